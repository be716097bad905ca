//! placeholder
pub enum Format{} pub enum Level{} pub enum Reason{} pub struct Invalid; pub struct Validator;
