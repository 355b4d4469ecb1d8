use proptest::prelude::*;

use super::*;
use crate::host::runtime::{RootFs, RuntimeKind};

fn held(id: &str, layers: &[&str], tags: &[&str]) -> ImageDetails {
    ImageDetails {
        id: id.into(),
        size: 1,
        repo_tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        rootfs: RootFs { layers: layers.iter().map(|l| l.to_string()).collect() },
        created: Some("2026-12-03T10:50:10.862426876Z".into()),
        ..ImageDetails::default()
    }
}

fn image(id: &str, layers: &[&str]) -> Image {
    let mut image = held(id, layers, &[]).to_image("backend", "cultivate-backend-api:v2");
    image.size_bytes = 400;
    image
}

fn inventory(images: Vec<ImageDetails>, store: ImageStore) -> Inventory {
    Inventory { images, store }
}

#[test]
fn an_image_the_target_holds_is_only_tagged_when_its_tag_is_missing() {
    let untagged = inventory(vec![held("sha256:a", &["l1", "l2"], &["x:v1"])], ImageStore::Classic);
    assert_eq!(plan(&image("sha256:a", &["l1", "l2"]), &untagged), Plan::Present { tag_id: Some("sha256:a".into()) });
    let tagged = inventory(vec![held("sha256:a", &["l1", "l2"], &["cultivate-backend-api:v2"])], ImageStore::Classic);
    assert_eq!(plan(&image("sha256:a", &["l1", "l2"]), &tagged), Plan::Present { tag_id: None });
}

#[test]
fn the_containerd_store_holds_the_same_image_under_another_id() {
    // Issue 11: the containerd store names an image by its manifest digest. The same
    // layers and config are the same image, tagged by the target's own id.
    let there = inventory(vec![held("sha256:manifest", &["l1", "l2"], &[])], ImageStore::Containerd);
    assert_eq!(
        plan(&image("sha256:config", &["l1", "l2"]), &there),
        Plan::Present { tag_id: Some("sha256:manifest".into()) }
    );
    // Another config over the same layers (another command, label or creation time)
    // is another image: it is sent, without any of its layers.
    let mut other = held("sha256:manifest", &["l1", "l2"], &[]);
    other.config.labels = Some([("org.opencontainers.image.version".to_string(), "v1".to_string())].into());
    let there = inventory(vec![other.clone()], ImageStore::Containerd);
    let new = image("sha256:config", &["l1", "l2"]);
    assert!(!is_same_image(&other, &new));
    assert_eq!(plan(&new, &there), Plan::Send { skip: BTreeSet::from(["l1".to_string(), "l2".to_string()]) });
    other.config.labels = None;
    other.created = Some("2026-12-04T00:00:00Z".into());
    assert!(!is_same_image(&other, &new));
    other.created = new_created();
    other.rootfs.layers.pop();
    assert!(!is_same_image(&other, &new));
}

fn new_created() -> Option<String> {
    held("x", &[], &[]).created
}

#[test]
fn layers_whose_chain_is_held_are_skipped_on_docker_stores_only() {
    let images = vec![held("sha256:old", &["base", "deps", "app1"], &[])];
    let new = image("sha256:new", &["base", "deps", "app2"]);
    for store in [ImageStore::Classic, ImageStore::Containerd] {
        let Plan::Send { skip } = plan(&new, &inventory(images.clone(), store)) else { panic!("must send") };
        assert_eq!(skip, BTreeSet::from(["base".to_string(), "deps".to_string()]));
        assert_eq!(estimated_bytes(&new, &Plan::Send { skip }), 400 / 3);
    }
    assert_eq!(plan(&new, &inventory(images, ImageStore::WholeImages)), Plan::Send { skip: BTreeSet::new() });
}

#[test]
fn a_layer_held_under_another_base_is_not_skipped() {
    // Same diff_id "deps", but on top of another base: its chain is not on the target.
    let inventory = inventory(vec![held("sha256:o", &["other", "deps"], &[])], ImageStore::Classic);
    assert_eq!(plan(&image("sha256:n", &["base", "deps"]), &inventory), Plan::Send { skip: BTreeSet::new() });
}

#[test]
fn a_layer_two_images_share_travels_with_the_first_only() {
    // Issue 11, item 3: the first deploy sent the base layer with each image.
    let images = [image("sha256:db", &["base", "pg"]), image("sha256:api", &["base", "bin"])];
    let plans = plan_all(&images, &inventory(Vec::new(), ImageStore::Classic));
    assert_eq!(
        plans,
        [Plan::Send { skip: BTreeSet::new() }, Plan::Send { skip: BTreeSet::from(["base".to_string()]) }]
    );
    let whole = plan_all(&images, &inventory(Vec::new(), ImageStore::WholeImages));
    assert!(whole.iter().all(|p| *p == Plan::Send { skip: BTreeSet::new() }));
}

#[test]
fn an_image_earlier_in_the_same_deploy_is_not_taken_as_held() {
    // Two references to one image (same id, same layers): the first is not on the
    // target yet, so the second must travel too (its layers left out), never be
    // "tagged" from an id the target may not have or may name differently.
    let images = [image("sha256:same", &["base", "bin"]), image("sha256:same", &["base", "bin"])];
    for store in [ImageStore::Classic, ImageStore::Containerd, ImageStore::Podman] {
        let plans = plan_all(&images, &inventory(Vec::new(), store));
        assert_eq!(plans[0], Plan::Send { skip: BTreeSet::new() }, "{store:?}");
        assert_eq!(plans[1], Plan::Send { skip: BTreeSet::from(["base".into(), "bin".into()]) }, "{store:?}");
    }
}

#[test]
fn store_kinds_are_told_apart() {
    assert!(is_classic_store("overlay2 [[\"Backing Filesystem\",\"extfs\"]]"));
    assert!(!is_classic_store("overlayfs [[\"driver-type\",\"io.containerd.snapshotter.v1\"]]"));
    assert!(!is_classic_store(""));
    let classic = "[]\n==store\noverlay2 null\n";
    let containerd = "[]\n==store\noverlayfs [[\"driver-type\",\"io.containerd.snapshotter.v1\"]]\n";
    assert_eq!(Inventory::parse(classic, RuntimeKind::Docker).unwrap().store, ImageStore::Classic);
    assert_eq!(Inventory::parse(containerd, RuntimeKind::Docker).unwrap().store, ImageStore::Containerd);
    assert_eq!(Inventory::parse(classic, RuntimeKind::Finch).unwrap().store, ImageStore::WholeImages);
    let podman = Inventory::parse("[]\n==store\n", RuntimeKind::Podman).unwrap().store;
    assert_eq!(podman, ImageStore::Podman);
    assert!(podman.takes_partial_archives() && !ImageStore::WholeImages.takes_partial_archives());
    assert!(Inventory::parse("garbage\n==store\n", RuntimeKind::Docker).is_err());
}

#[test]
fn the_config_fingerprint_reads_both_engines_alike() {
    // Docker 20.10 prints the deprecated container-config fields and nulls; Docker 28
    // (either store) leaves them out. The same image must fingerprint the same.
    let old = r#"{"Id":"sha256:ec2e","Size":1,"Created":"2026-12-03T10:50:10.862426876Z","Architecture":"amd64",
        "Os":"linux","RootFS":{"Layers":["sha256:l1"]},"Config":{"Hostname":"","Domainname":"","User":"999",
        "AttachStdin":false,"ExposedPorts":null,"Tty":false,"Env":["PATH=/usr/bin"],"Cmd":["postgres"],
        "Healthcheck":{"Test":["CMD","pg_isready"],"Interval":3000000000,"Timeout":3000000000,"Retries":10},
        "Image":"","Volumes":{"/var/run/postgresql":{}},"WorkingDir":"","Entrypoint":null,"OnBuild":null,
        "Labels":{"a":"b"},"StopSignal":"SIGINT"}}"#;
    let new = r#"{"Id":"sha256:5f16","Size":1,"Created":"2026-12-03T10:50:10.862426876Z","Architecture":"amd64",
        "Os":"linux","RootFS":{"Layers":["sha256:l1"]},"Config":{"User":"999","Env":["PATH=/usr/bin"],
        "Cmd":["postgres"],"Healthcheck":{"Interval":3000000000,"Retries":10,"Test":["CMD","pg_isready"],
        "Timeout":3000000000},"Volumes":{"/var/run/postgresql":{}},"Labels":{"a":"b"},"StopSignal":"SIGINT",
        "OnBuild":null}}"#;
    let old: ImageDetails = serde_json::from_str(old).unwrap();
    let new: ImageDetails = serde_json::from_str(new).unwrap();
    assert_eq!(old.config_fingerprint(), new.config_fingerprint());
    let mut changed = new.clone();
    changed.config.cmd = Some(vec!["sh".into()]);
    assert_ne!(changed.config_fingerprint(), new.config_fingerprint());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    // Property 20: image transfer verification. Whatever the target holds, a layer is
    // left out only when the target has the same chain of layers up to it, and an
    // image counts as present only with the same layers and config.
    #[test]
    fn property_20_only_held_chains_are_skipped(
        held_layers in prop::collection::vec(prop::collection::vec(0u8..4, 0..5), 0..4),
        new_layers in prop::collection::vec(0u8..4, 1..6),
        store in prop_oneof![Just(ImageStore::Classic), Just(ImageStore::Containerd), Just(ImageStore::WholeImages)],
    ) {
        let name = |l: &u8| format!("sha256:{l}");
        let images: Vec<ImageDetails> = held_layers
            .iter()
            .enumerate()
            .map(|(i, ls)| {
                let layers: Vec<String> = ls.iter().map(name).collect();
                let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
                // Another build: another config than the new image's.
                let mut other = held(&format!("sha256:id{i}"), &refs, &[]);
                other.config.labels = Some([("build".to_string(), i.to_string())].into());
                other
            })
            .collect();
        let inventory = Inventory { images, store };
        let layers: Vec<String> = new_layers.iter().map(name).collect();
        let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
        let new = image("sha256:new", &refs);
        match plan(&new, &inventory) {
            Plan::Present { .. } => prop_assert!(false, "another build is never present"),
            Plan::Send { skip } => {
                prop_assert!(store.takes_partial_archives() || skip.is_empty());
                for (i, layer) in new.layers.iter().enumerate() {
                    if skip.contains(layer) {
                        let chain = &new.layers[..=i];
                        prop_assert!(inventory.images.iter().any(|h| h.rootfs.layers.starts_with(chain)));
                    }
                }
            }
        }
    }

    // Property 20, one deploy's images together (issue 11, item 3): a layer is left
    // out only when the target or an image shipped before it in the same deploy holds
    // its chain, and one whose chain an earlier image brings never travels again.
    #[test]
    fn property_20_each_layer_chain_travels_at_most_once_per_deploy(
        held_layers in prop::collection::vec(prop::collection::vec(0u8..3, 0..4), 0..3),
        release in prop::collection::vec(prop::collection::vec(0u8..3, 1..5), 1..4),
    ) {
        let name = |l: &u8| format!("sha256:{l}");
        let images: Vec<ImageDetails> = held_layers
            .iter()
            .map(|ls| ImageDetails { rootfs: RootFs { layers: ls.iter().map(name).collect() }, ..Default::default() })
            .collect();
        let inventory = Inventory { images, store: ImageStore::Classic };
        let release: Vec<Image> = release
            .iter()
            .enumerate()
            .map(|(i, ls)| {
                let layers: Vec<String> = ls.iter().map(name).collect();
                let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
                image(&format!("sha256:r{i}"), &refs)
            })
            .collect();
        let plans = plan_all(&release, &inventory);
        let mut before: Vec<Vec<String>> = inventory.images.iter().map(|h| h.rootfs.layers.clone()).collect();
        for (image, plan) in release.iter().zip(&plans) {
            if let Plan::Send { skip } = plan {
                for (i, layer) in image.layers.iter().enumerate() {
                    let chain = &image.layers[..=i];
                    let held = before.iter().any(|layers| layers.starts_with(chain));
                    // Sound: only held chains are left out.
                    if skip.contains(layer) {
                        prop_assert!(held, "{layer} left out, its chain {chain:?} not held");
                    }
                    // Once: a chain held (or brought earlier) is left out, unless the same
                    // diff_id also sits where its chain is not.
                    let repeated_elsewhere = image.layers.iter().enumerate().any(|(j, l)| {
                        l == layer && !before.iter().any(|ls| ls.starts_with(&image.layers[..=j]))
                    });
                    if held && !repeated_elsewhere {
                        prop_assert!(skip.contains(layer), "{layer} travels again: {chain:?} was held");
                    }
                }
            }
            before.push(image.layers.clone());
        }
    }
}

#[test]
fn an_image_under_the_engines_long_name_and_bare_id_is_held_and_tagged() {
    // Podman prints a bare hex id; the containerd store and Podman list short names
    // with the default registry (or localhost/) in front. The same image, already tagged.
    let hex = "984e120fd48e88ea4608f6ae739f19b92daec8523df532eea3b1f3c567a961bb";
    let json = format!(
        r#"[{{"Id":"{hex}","Size":1,"RepoTags":["docker.io/library/cultivate-backend-api:v2"],
             "RootFS":{{"Layers":["l1"]}},"Created":"2026-12-03T10:50:10.862426876Z"}}]"#
    );
    let images: Vec<ImageDetails> = serde_json::from_str(&json).unwrap();
    assert_eq!(images[0].id, format!("sha256:{hex}"));
    let inventory = inventory(images, ImageStore::WholeImages);
    assert_eq!(plan(&image(&format!("sha256:{hex}"), &["l1"]), &inventory), Plan::Present { tag_id: None });
}
