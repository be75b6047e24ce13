#[derive(dbsync::Tracked)]
pub enum Model {
    A,
}

fn main() {}
