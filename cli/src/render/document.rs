//! A report as a format-neutral document: a title, labelled fields, then sections of
//! tables, sentences and lists. `sections` decides what is said; `text` and `markdown`
//! only decide how it looks, so the two formats can never disagree on content.

/// The whole printed report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub title: String,
    /// `label: value` lines under the title.
    pub fields: Vec<(String, String)>,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Fields(Vec<(String, String)>),
    Table(Table),
    /// A sentence on its own line ("none", "... 12 more").
    Line(String),
    /// A bulleted list.
    List(Vec<String>),
}

/// Numbers read best right-aligned; words left-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub align: Align,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<Column>,
    /// One cell per column in every row.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns from `(name, align)` pairs; rows added with [`Table::row`].
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|&(name, align)| Column { name, align })
                .collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "one cell per column");
        self.rows.push(cells);
    }
}
