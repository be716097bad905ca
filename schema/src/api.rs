//! placeholder
pub struct ApiRequest<'a> { pub method: &'a str, pub path: &'a str, pub query: &'a str, pub body: &'a [u8] }
pub struct ApiResponse { pub status: u16, pub body: serde_json::Value }
pub fn route(_r: &crate::registry::Registry, _q: &ApiRequest) -> (ApiResponse, Option<crate::registry::Registry>) { todo!() }
