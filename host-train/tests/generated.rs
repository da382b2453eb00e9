//! Generated files kept in the repository must match what the code generates now.
#![forbid(unsafe_code)]
use host_train::zoo;

#[test]
fn reference_graph_files_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../reference");
    for name in ["tiny-multishift-4c", "tiny-flat-8c"] {
        let path = dir.join(format!("{name}.graph.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let committed: host_train::graph::Graph = serde_json::from_str(&text).unwrap();
        let now = zoo::arch(name).unwrap().graph();
        assert!(
            committed == now,
            "{} is stale: regenerate with `cargo run --release -p host-train --bin shiftkit-train -- zoo --graph {name} > reference/{name}.graph.json`, then python3 reference/make_golden.py",
            path.display()
        );
    }
}
