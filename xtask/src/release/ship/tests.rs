use proptest::prelude::*;

use super::*;
use crate::host::runtime::{RootFs, RuntimeKind};

fn held(id: &str, layers: &[&str], tags: &[&str]) -> ImageDetails {
    ImageDetails {
        id: id.into(),
        size: 1,
        repo_tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        rootfs: RootFs { layers: layers.iter().map(|l| l.to_string()).collect() },
        config: Default::default(),
    }
}

fn image(id: &str, layers: &[&str]) -> Image {
    Image {
        service: "backend".into(),
        reference: "cultivate-backend-api:v2".into(),
        id: id.into(),
        layers: layers.iter().map(|l| l.to_string()).collect(),
        size_bytes: 400,
    }
}

#[test]
fn an_image_the_target_holds_is_only_tagged_when_its_tag_is_missing() {
    let inventory = Inventory { images: vec![held("sha256:a", &["l1", "l2"], &["x:v1"])], classic_store: true };
    assert_eq!(plan(&image("sha256:a", &["l1", "l2"]), &inventory), Plan::Present { tag: true });
    let tagged =
        Inventory { images: vec![held("sha256:a", &["l1", "l2"], &["cultivate-backend-api:v2"])], classic_store: true };
    assert_eq!(plan(&image("sha256:a", &["l1", "l2"]), &tagged), Plan::Present { tag: false });
}

#[test]
fn layers_whose_chain_is_held_are_skipped_on_classic_stores_only() {
    let images = vec![held("sha256:old", &["base", "deps", "app1"], &[])];
    let classic = Inventory { images: images.clone(), classic_store: true };
    let new = image("sha256:new", &["base", "deps", "app2"]);
    let Plan::Send { skip } = plan(&new, &classic) else { panic!("must send") };
    assert_eq!(skip, BTreeSet::from(["base".to_string(), "deps".to_string()]));
    assert_eq!(estimated_bytes(&new, &Plan::Send { skip }), 400 / 3);
    let containerd = Inventory { images, classic_store: false };
    assert_eq!(plan(&new, &containerd), Plan::Send { skip: BTreeSet::new() });
}

#[test]
fn a_layer_held_under_another_base_is_not_skipped() {
    // Same diff_id "deps", but on top of another base: its chain is not on the target.
    let inventory = Inventory { images: vec![held("sha256:o", &["other", "deps"], &[])], classic_store: true };
    assert_eq!(plan(&image("sha256:n", &["base", "deps"]), &inventory), Plan::Send { skip: BTreeSet::new() });
}

#[test]
fn store_kinds_are_told_apart() {
    assert!(is_classic_store("overlay2 [[\"Backing Filesystem\",\"extfs\"]]"));
    assert!(!is_classic_store("overlayfs [[\"driver-type\",\"io.containerd.snapshotter.v1\"]]"));
    assert!(!is_classic_store(""));
    let text = "[]\n==store\noverlay2 null\n";
    assert!(Inventory::parse(text, RuntimeKind::Docker).unwrap().classic_store);
    assert!(!Inventory::parse(text, RuntimeKind::Finch).unwrap().classic_store);
    assert!(Inventory::parse("garbage\n==store\n", RuntimeKind::Docker).is_err());
}

#[test]
fn the_filter_leaves_out_dropped_entries_and_finds_the_config_digest() {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data).unwrap();
    };
    add("aaa/layer.tar", b"base layer");
    add("bbb/layer.tar", b"app layer");
    add("cfg.json", b"{\"config\":1}");
    add("manifest.json", br#"[{"Config":"cfg.json","RepoTags":["x:v1"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}]"#);
    let input = tar.into_inner().unwrap();

    let mut compressed = Vec::new();
    let drop = BTreeSet::from(["aaa/layer.tar".to_string()]);
    let digest = filter_save_stream(&input[..], GzEncoder::new(&mut compressed, Compression::fast()), &drop).unwrap();
    assert_eq!(digest, Some(crate::support::digest::sha256(b"{\"config\":1}")));

    let mut names = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&compressed[..]));
    for entry in archive.entries().unwrap() {
        names.push(entry.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(names, ["bbb/layer.tar", "cfg.json", "manifest.json"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    // Property 20: image transfer verification. Whatever the target holds, a layer is
    // left out only when the target has the same chain of layers up to it, and an
    // image counts as present only with the same id and the same layers.
    #[test]
    fn property_20_only_held_chains_are_skipped(
        held_layers in prop::collection::vec(prop::collection::vec(0u8..4, 0..5), 0..4),
        new_layers in prop::collection::vec(0u8..4, 1..6),
        classic: bool,
    ) {
        let name = |l: &u8| format!("sha256:{l}");
        let images: Vec<ImageDetails> = held_layers
            .iter()
            .enumerate()
            .map(|(i, ls)| {
                let layers: Vec<String> = ls.iter().map(name).collect();
                let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
                held(&format!("sha256:id{i}"), &refs, &[])
            })
            .collect();
        let inventory = Inventory { images, classic_store: classic };
        let layers: Vec<String> = new_layers.iter().map(name).collect();
        let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
        let new = image("sha256:new", &refs);
        match plan(&new, &inventory) {
            Plan::Present { .. } => prop_assert!(false, "a new id is never present"),
            Plan::Send { skip } => {
                prop_assert!(classic || skip.is_empty());
                for (i, layer) in new.layers.iter().enumerate() {
                    if skip.contains(layer) {
                        let chain = &new.layers[..=i];
                        prop_assert!(inventory.images.iter().any(|h| h.rootfs.layers.starts_with(chain)));
                    }
                }
            }
        }
    }
}
