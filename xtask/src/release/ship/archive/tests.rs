use std::io::Write as _;

use super::*;

/// Small limits so every path (kept, held in memory, held in a file) is exercised.
const TINY: Limits = Limits { small: 16, in_memory: 64 };

fn digest(data: &[u8]) -> String {
    crate::support::digest::sha256(data)
}

fn hex(data: &[u8]) -> String {
    digest(data).trim_start_matches("sha256:").to_string()
}

/// A layer's tar content, `size` bytes of `fill`.
fn layer(fill: u8, size: usize) -> Vec<u8> {
    vec![fill; size]
}

fn config_for(layers: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"User": "1001"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap()
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, path, data).unwrap();
}

/// Docker 24's legacy `save` format: layers under v1 ids (in id order, as Docker
/// writes them), the config, manifest.json; `dup` adds the first layer again as a link.
fn legacy_stream(layers: &[&[u8]], config: &[u8], dup: bool) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let ids: Vec<String> = (0..layers.len()).map(|i| format!("{:064x}", 0xf0 - i)).collect();
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by_key(|i| ids[*i].clone());
    for i in order {
        append(&mut tar, &format!("{}/VERSION", ids[i]), b"1.0");
        append(&mut tar, &format!("{}/json", ids[i]), b"{}");
        append(&mut tar, &format!("{}/layer.tar", ids[i]), layers[i]);
    }
    let mut paths: Vec<String> = ids.iter().map(|id| format!("{id}/layer.tar")).collect();
    if dup {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o644);
        tar.append_link(&mut header, "dup/layer.tar", format!("../{}/layer.tar", ids[0])).unwrap();
        paths.push("dup/layer.tar".into());
    }
    let config_name = format!("{}.json", hex(config));
    append(&mut tar, &config_name, config);
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["x:v1"], "Layers": paths}]);
    append(&mut tar, "manifest.json", manifest.to_string().as_bytes());
    tar.into_inner().unwrap()
}

struct Output {
    written: Written,
    files: BTreeMap<String, Vec<u8>>,
    order: Vec<String>,
}

fn run(input: &[u8], skip: &[&[u8]], names: &mut LayerNames) -> Result<Output> {
    run_with(input, skip, names, TINY)
}

fn run_with(input: &[u8], skip: &[&[u8]], names: &mut LayerNames, limits: Limits) -> Result<Output> {
    let spool = std::env::temp_dir().join(format!("cultivate-archive-test-{}", std::process::id()));
    let skip: BTreeSet<String> = skip.iter().map(|l| digest(l)).collect();
    let mut bytes = Vec::new();
    let written = rewrite(input, &mut bytes, "cultivate-backend-api:v2", &skip, names, &spool, limits)?;
    let mut files = BTreeMap::new();
    let mut order = Vec::new();
    for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        order.push(path.clone());
        files.insert(path, data);
    }
    // No spooled layer is left behind.
    assert!(std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0) == 0, "spool files left in {spool:?}");
    Ok(Output { written, files, order })
}

#[test]
fn a_legacy_stream_becomes_an_oci_layout_with_dockers_manifest_and_held_layers_left_out() {
    let (base, deps, app) = (layer(1, 200), layer(2, 40), layer(3, 10));
    let config = config_for(&[&base, &deps, &app]);
    let input = legacy_stream(&[&base, &deps, &app], &config, false);
    let mut names = LayerNames::default();
    let out = run(&input, &[&base], &mut names).unwrap();

    assert_eq!(out.written.left_out, BTreeSet::from([digest(&base)]));
    assert_eq!(out.written.config_digest, digest(&config));
    let blob = |data: &[u8]| format!("blobs/sha256/{}", hex(data));
    assert!(!out.files.contains_key(&blob(&base)), "the held layer travelled");
    assert_eq!(out.files[&blob(&deps)], deps);
    assert_eq!(out.files[&blob(&app)], app);
    assert_eq!(out.files[&blob(&config)], config);

    // Docker's manifest.json names every layer, present or not, in order.
    let docker: serde_json::Value = serde_json::from_slice(&out.files["manifest.json"]).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "cultivate-backend-api:v2");
    assert_eq!(docker[0]["Config"], blob(&config));
    let layers: Vec<String> = [&base, &deps, &app].iter().map(|l| blob(l)).collect();
    assert_eq!(docker[0]["Layers"], serde_json::json!(layers));

    // The OCI index points at the manifest written, whose digest is the containerd id.
    let index: serde_json::Value = serde_json::from_slice(&out.files["index.json"]).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], out.written.manifest_digest.as_str());
    assert_eq!(entry["annotations"]["io.containerd.image.name"], "docker.io/library/cultivate-backend-api:v2");
    assert_eq!(entry["annotations"]["org.opencontainers.image.ref.name"], "v2");
    let manifest_bytes =
        &out.files[&format!("blobs/sha256/{}", out.written.manifest_digest.trim_start_matches("sha256:"))];
    assert_eq!(digest(manifest_bytes), out.written.manifest_digest);
    let manifest: serde_json::Value = serde_json::from_slice(manifest_bytes).unwrap();
    assert_eq!(manifest["config"]["digest"], digest(&config).as_str());
    assert_eq!(manifest["layers"][0]["digest"], digest(&base).as_str());
    assert_eq!(manifest["layers"][0]["size"], 200);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    assert_eq!(out.files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    // Metadata last: the loaders read the whole archive anyway.
    assert_eq!(out.order.last().map(String::as_str), Some("manifest.json"));

    // Every layer's path was learned.
    let learned: BTreeSet<&String> = names.paths.values().collect();
    assert_eq!(learned, [digest(&base), digest(&deps), digest(&app)].iter().collect());
}

/// The tar reader stops at the first end-of-archive block; the save command writing the
/// rest (a second block, a record's padding) died of SIGPIPE when the read end was
/// dropped early, and the deploy failed ("`docker save` failed: signal 13").
#[test]
fn the_save_stream_is_read_to_its_end() {
    let (a, b) = (layer(1, 200), layer(2, 300));
    let config = config_for(&[&a, &b]);
    let mut stream = legacy_stream(&[&a, &b], &config, false);
    stream.extend_from_slice(&[0; 10240]);
    let mut input = std::io::Cursor::new(&stream[..]);
    let spool = std::env::temp_dir().join(format!("cultivate-archive-end-{}", std::process::id()));
    rewrite(&mut input, Vec::new(), "r:v", &BTreeSet::new(), &mut LayerNames::default(), &spool, TINY).unwrap();
    assert_eq!(input.position(), stream.len() as u64, "the stream was not read to its end");

    // Anything but padding past the end, at length, is refused.
    let mut endless = legacy_stream(&[&a, &b], &config, false);
    endless.extend(std::iter::repeat_n(7u8, (TRAILING_LIMIT + 2) as usize));
    let refused = rewrite(&endless[..], Vec::new(), "r:v", &BTreeSet::new(), &mut LayerNames::default(), &spool, TINY);
    assert!(format!("{:#}", refused.unwrap_err()).contains("past the end"));
}

#[test]
fn learned_names_stream_the_same_archive() {
    let (base, app) = (layer(1, 300), layer(3, 100));
    let config = config_for(&[&base, &app]);
    let input = legacy_stream(&[&base, &app], &config, false);
    let mut names = LayerNames::default();
    let first = run(&input, &[], &mut names).unwrap();
    let learned = names.clone();
    let second = run(&input, &[], &mut names).unwrap();
    assert_eq!(first.files, second.files);
    assert_eq!(first.written, second.written);
    assert_eq!(names, learned);
    let skipped = run(&input, &[&base], &mut names).unwrap();
    assert_eq!(skipped.written.left_out, BTreeSet::from([digest(&base)]));
    assert!(!skipped.files.contains_key(&format!("blobs/sha256/{}", hex(&base))));
}

#[test]
fn a_layer_saved_twice_travels_once() {
    let (base, app) = (layer(1, 100), layer(3, 30));
    let config = config_for(&[&base, &app, &base]);
    let input = legacy_stream(&[&base, &app], &config, true);
    let out = run(&input, &[], &mut LayerNames::default()).unwrap();
    let blobs = out.order.iter().filter(|p| p.ends_with(&hex(&base))).count();
    assert_eq!(blobs, 1, "{:?}", out.order);
    let docker: serde_json::Value = serde_json::from_slice(&out.files["manifest.json"]).unwrap();
    assert_eq!(docker[0]["Layers"].as_array().unwrap().len(), 3);
}

#[test]
fn a_stream_whose_layers_differ_from_its_config_is_refused() {
    let (base, app) = (layer(1, 100), layer(3, 30));
    let config = config_for(&[&base, &layer(9, 30)]);
    let input = legacy_stream(&[&base, &app], &config, false);
    let message = format!("{:#}", run(&input, &[], &mut LayerNames::default()).err().unwrap());
    assert!(message.contains("is corrupt: layer 1"), "{message}");
}

#[test]
fn a_stale_layer_name_is_refused_and_forgotten() {
    let (base, app) = (layer(1, 100), layer(3, 30));
    let config = config_for(&[&base, &app]);
    let input = legacy_stream(&[&base, &app], &config, false);
    let mut names = LayerNames::default();
    run(&input, &[], &mut names).unwrap();
    let (path, _) = names.paths.iter().find(|(_, d)| **d == digest(&app)).map(|(p, d)| (p.clone(), d.clone())).unwrap();
    names.paths.insert(path.clone(), digest(b"something else"));
    let message = format!("{:#}", run(&input, &[], &mut names).err().unwrap());
    assert!(message.contains("is not the layer"), "{message}");
    assert!(!names.paths.contains_key(&path));
}

#[test]
fn an_oci_stream_keeps_its_blob_names_and_compressed_layers() {
    // OCI configs are blobs too: kept as metadata below `small`.
    let limits = Limits { small: 512, in_memory: 2048 };
    let base = layer(1, 4000);
    let app = layer(3, 50);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&app).unwrap();
    let app_gz = gz.finish().unwrap();
    let config = config_for(&[&base, &app]);
    let mut tar = tar::Builder::new(Vec::new());
    for data in [&base, &app_gz, &config] {
        append(&mut tar, &format!("blobs/sha256/{}", hex(data)), data);
    }
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", hex(&config)),
        "RepoTags": ["x:v1"],
        "Layers": [format!("blobs/sha256/{}", hex(&base)), format!("blobs/sha256/{}", hex(&app_gz))]
    }]);
    append(&mut tar, "manifest.json", manifest.to_string().as_bytes());
    let input = tar.into_inner().unwrap();

    let out = run_with(&input, &[&base], &mut LayerNames::default(), limits).unwrap();
    assert_eq!(out.written.left_out, BTreeSet::from([digest(&base)]));
    assert_eq!(out.files[&format!("blobs/sha256/{}", hex(&app_gz))], app_gz);
    let manifest_path = format!("blobs/sha256/{}", out.written.manifest_digest.trim_start_matches("sha256:"));
    let manifest: serde_json::Value = serde_json::from_slice(&out.files[&manifest_path]).unwrap();
    assert_eq!(manifest["layers"][1]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    assert_eq!(manifest["layers"][1]["digest"], digest(&app_gz).as_str());
}

/// Issue 14: hosts shipped to at once save the layer names from several threads; one
/// shared `.partial` name let one thread rename away (or truncate) another's file.
#[test]
fn layer_names_saved_from_several_threads_at_once_all_land() {
    let dir = std::env::temp_dir().join(format!("cultivate-layer-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("layer-names.json");
    std::thread::scope(|scope| {
        for thread in 0..6 {
            let file = &file;
            scope.spawn(move || {
                for round in 0..40 {
                    let mut names = LayerNames::default();
                    names.paths.insert(format!("{thread}/{round}/layer.tar"), "sha256:0".repeat(8));
                    names.save(file).unwrap();
                }
            });
        }
    });
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(serde_json::from_str::<LayerNames>(&text).is_ok(), "{text}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "only the file remains: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
