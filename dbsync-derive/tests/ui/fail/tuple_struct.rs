#[derive(dbsync::Tracked)]
pub struct Model(i32);

fn main() {}
