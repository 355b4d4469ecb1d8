use proptest::prelude::*;

use super::*;

const HOSTILE: [&str; 10] = [
    "plain",
    "with space",
    "it's",
    "double \"quoted\"",
    "$HOME and ${PATH}",
    "`uname`",
    "a; rm -rf /tmp/x",
    "line\nbreak",
    "back\\slash",
    "*?[glob]~ & | > <",
];

/// The line a remote shell receives for these words: a command value's display, which
/// is what the ssh carrier sends.
fn remote_line(words: &[&str]) -> String {
    Cmd::new(words[0]).args(words[1..].iter().copied()).to_string()
}

/// What a POSIX shell makes of a remote line: each argument on its own, NUL-separated.
fn through_a_shell(line: &str) -> Vec<String> {
    let output = std::process::Command::new("sh").arg("-c").arg(format!("printf '%s\\0' {line}")).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_terminator('\0').map(str::to_string).collect()
}

#[test]
fn hostile_words_survive_the_remote_shell() {
    let words: Vec<&str> = HOSTILE.to_vec();
    assert_eq!(through_a_shell(&remote_line(&words)), words);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_words_survive_the_remote_shell(words in proptest::collection::vec("[^\u{0}]{0,12}", 1..5)) {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        prop_assert_eq!(through_a_shell(&remote_line(&refs)), words);
    }
}

#[test]
fn a_command_value_is_one_remote_word_after_double_dash() {
    let mut ssh = Ssh::new(SshTarget::parse("deploy@example.org:2222").unwrap()).unwrap();
    ssh.identity_file = Some("/home/me/.ssh/id_ed25519".into());
    let remote = Cmd::new("mkdir").args(["-p", "/opt/my app; reboot"]);
    let carrier = Transport::Ssh(ssh).carrier(&remote);
    assert_eq!(carrier.program, "ssh");
    let n = carrier.args.len();
    assert_eq!(&carrier.args[n - 3..], ["--", "example.org", "mkdir -p '/opt/my app; reboot'"]);
    let options = carrier.args[..n - 3].join(" ");
    for expected in [
        "BatchMode=yes",
        "ConnectTimeout=10",
        "ControlMaster=auto",
        "ControlPersist=60",
        "-p 2222",
        "-l deploy",
        "-i /home/me/.ssh/id_ed25519",
    ] {
        assert!(options.contains(expected), "{expected} missing from {options}");
    }
    assert!(options.contains("ControlPath=/") && options.contains("/%C"), "{options}");
}

#[test]
fn the_local_transport_runs_the_command_itself() {
    let remote = Cmd::new("echo").arg("hi there");
    assert_eq!(Transport::Local.carrier(&remote), remote);
    assert_eq!(Transport::Local.output(&remote).unwrap(), "hi there");
}

#[test]
fn upload_is_atomic_and_sets_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cultivate-upload-{}", std::process::id()));
    let path = dir.join("sub dir/it's.env");
    Transport::Local.upload(b"SECRET=1\n", &path.to_string_lossy(), 0o600).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"SECRET=1\n");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 9, item 1 (a sibling): a failed upload removes the temporary file it
/// created, and nothing else.
#[test]
fn a_failed_upload_leaves_no_temporary_file_and_keeps_the_old_one() {
    let dir = std::env::temp_dir().join(format!("cultivate-upload-failed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("release.json");
    std::fs::write(&path, "old").unwrap();
    // An impossible mode makes `chmod` fail after the temporary file was written.
    let failed = Transport::Local.upload(b"new", &path.to_string_lossy(), 0o1_000_000);
    assert!(failed.is_err(), "an impossible mode was accepted");
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["release.json"], "temporary files left behind");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn targets_parse() {
    let target = SshTarget::parse("root@127.0.0.1:2201").unwrap();
    assert_eq!((target.user.as_deref(), target.host.as_str(), target.port), (Some("root"), "127.0.0.1", Some(2201)));
    assert_eq!(target.to_string(), "root@127.0.0.1:2201");
    let target = SshTarget::parse("example.org").unwrap();
    assert_eq!((target.user, target.port), (None, None));
    let target = SshTarget::parse("admin@[::1]:22").unwrap();
    assert_eq!((target.host.as_str(), target.port), ("::1", Some(22)));
    assert_eq!(target.to_string(), "admin@[::1]:22");
}

#[test]
fn hostile_targets_are_refused_before_ssh_runs() {
    for hostile in [
        "-oProxyCommand=touch /tmp/pwned",
        "-p2222 host",
        "host -oProxyCommand=x",
        "user@-oProxyCommand=x",
        "-l@host",
        "host\nsecond",
        "host\t",
        "",
        "host;reboot",
        "$(reboot)",
        "`id`@host",
        "host:0",
        "host:99999",
        "host:22x",
        "[::1",
        "a@",
    ] {
        let message = format!("{:#}", SshTarget::parse(hostile).unwrap_err());
        assert!(message.contains("not a valid SSH target"), "{hostile:?}: {message}");
    }
}

#[test]
fn ssh_failures_are_named() {
    let cases = [
        ("ssh: connect to host 127.0.0.1 port 1: Connection refused", SshFailure::Refused),
        ("ssh: Could not resolve hostname nowhere.invalid: Name or service not known", SshFailure::UnknownHost),
        ("ssh: connect to host 10.0.0.1 port 22: Connection timed out", SshFailure::TimedOut),
        ("Connection timed out during banner exchange", SshFailure::TimedOut),
        ("ssh: connect to host 192.0.2.1 port 22: No route to host", SshFailure::Unreachable),
        ("root@127.0.0.1: Permission denied (publickey).", SshFailure::AuthenticationFailed),
        ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", SshFailure::HostKeyChanged),
        ("Host key verification failed.", SshFailure::HostKeyUnknown),
    ];
    for (stderr, expected) in cases {
        assert_eq!(SshFailure::from_stderr(stderr), expected, "{stderr}");
        assert!(expected.message("root@h:22").contains("root@h:22"));
    }
}

#[test]
fn streams_flow_both_ways_and_failures_name_their_side() {
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut output = Vec::new();
    let copied = Transport::Local.stream(&Cmd::new("cat"), Some(&mut &input[..]), &mut output).unwrap();
    assert_eq!(copied, input.len() as u64);
    assert_eq!(output, input);
    let mut sink = Vec::new();
    let message = format!(
        "{:#}",
        Transport::Local.stream(&Cmd::new("sh").args(["-c", "echo nope >&2; exit 4"]), None, &mut sink).unwrap_err()
    );
    assert!(message.contains("nope") && message.contains("exit status: 4"), "{message}");
}

#[test]
fn files_upload_streamed() {
    let dir = std::env::temp_dir().join(format!("cultivate-upload-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("source"), b"contents").unwrap();
    let target = dir.join("copy");
    Transport::Local.upload_file(&dir.join("source"), &target.to_string_lossy(), 0o644).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"contents");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The longest socket path ssh creates for these options: `%C` is 40 hex digits, and
/// while setting the master up ssh binds `<path>.<16 random characters>`.
fn longest_socket_from_options(options: &[String]) -> usize {
    let control_path = options.iter().find_map(|o| o.strip_prefix("ControlPath=")).expect("a ControlPath option");
    assert!(control_path.ends_with("/%C"), "{control_path}");
    control_path.replace("%C", &"0".repeat(40)).len() + ".0123456789abcdef".len()
}

#[test]
fn control_sockets_fit_the_unix_socket_limit_even_with_macos_tmpdir() {
    use std::os::unix::fs::PermissionsExt;
    let macos_tmpdir = "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/";
    assert!(macos_tmpdir.len() >= 49);
    let very_long = format!("/{}", "d".repeat(200));
    for tmpdir in [macos_tmpdir, very_long.as_str(), "/tmp", "relative/tmp"] {
        let ssh = Ssh::new_in(
            SshTarget::parse("deploy@a-rather-long-host-name.example.org:2222").unwrap(),
            Path::new(tmpdir),
        )
        .unwrap();
        let longest = longest_socket_from_options(&ssh.options());
        assert!(longest < SOCKET_PATH_LIMIT, "{tmpdir}: a socket path of {longest} bytes");
        assert_eq!(longest, longest_control_socket(&ssh.control_dir));
        let meta = std::fs::symlink_metadata(&ssh.control_dir).unwrap();
        assert!(meta.is_dir() && meta.permissions().mode() & 0o777 == 0o700, "{meta:?}");
        let dir = ssh.control_dir.clone();
        drop(ssh);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn control_sockets_fit_whatever_the_tmpdir(tmpdir in "(/[a-zA-Z0-9._-]{1,40}){0,8}/?") {
        let base = control_base(Path::new(&tmpdir));
        let dir = base.join(format!("{CONTROL_DIR_PREFIX}{}", "x".repeat(CONTROL_DIR_RANDOM_LEN)));
        prop_assert!(longest_control_socket(&dir) < SOCKET_PATH_LIMIT, "{}", dir.display());
    }
}

#[test]
fn the_control_directory_is_never_one_that_already_exists() {
    let scratch = std::env::temp_dir().join(format!("cultivate-ctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let elsewhere = scratch.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let link = scratch.join("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    for existing in [&link, &elsewhere] {
        let err = create_private_dir(existing).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{}", existing.display());
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    std::fs::remove_dir_all(&scratch).unwrap();
}

const NO_KEYS: &str = "user root\nhostname h\nport 22\nidentityfile ~/.ssh/id_rsa\nidentityfile ~/.ssh/id_ed25519\n";

#[test]
fn a_machine_without_any_key_is_told_how_to_make_one() {
    let home = std::env::temp_dir().join(format!("cultivate-keyless-{}", std::process::id()));
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let no_agent = |_: Option<&str>| false;
    let offer = key_offer(NO_KEYS, Some(&home), &no_agent);
    assert_eq!(offer, KeyOffer::Nothing { tried: vec!["~/.ssh/id_rsa".into(), "~/.ssh/id_ed25519".into()] });
    let message = no_key_message(&["~/.ssh/id_rsa".into()]);
    for fix in ["ssh-keygen -t ed25519", "ssh-add", "identity_file", "~/.ssh/id_rsa"] {
        assert!(message.contains(fix), "{fix} missing from {message}");
    }

    // A key ssh would try, wherever ~/.ssh/config names it: not our business to refuse.
    std::fs::write(home.join("elsewhere_key"), "k").unwrap();
    let configured = format!("{NO_KEYS}identityfile %d/elsewhere_key\n");
    assert_eq!(key_offer(&configured, Some(&home), &no_agent), KeyOffer::Something);
    let absolute = format!("{NO_KEYS}identityfile {}\n", home.join("elsewhere_key").display());
    assert_eq!(key_offer(&absolute, None, &no_agent), KeyOffer::Something);
    std::fs::write(home.join(".ssh/id_ed25519"), "k").unwrap();
    assert_eq!(key_offer(NO_KEYS, Some(&home), &no_agent), KeyOffer::Something);
    std::fs::remove_file(home.join(".ssh/id_ed25519")).unwrap();

    // An agent with keys counts; `IdentityAgent none` means no agent is asked.
    let agent_with_keys = |_: Option<&str>| true;
    assert_eq!(key_offer(NO_KEYS, Some(&home), &agent_with_keys), KeyOffer::Something);
    let no_agent_configured = format!("{NO_KEYS}identityagent none\n");
    assert!(matches!(key_offer(&no_agent_configured, Some(&home), &agent_with_keys), KeyOffer::Nothing { .. }));
    let asked = std::cell::RefCell::new(Vec::new());
    let recording = |socket: Option<&str>| {
        asked.borrow_mut().push(socket.map(str::to_string));
        false
    };
    key_offer(&format!("{NO_KEYS}identityagent /run/agent.sock\n"), Some(&home), &recording);
    assert_eq!(*asked.borrow(), [Some("/run/agent.sock".to_string())]);

    // What cannot be told here is left to ssh.
    for unknown in ["identityfile ~/.ssh/%h_key", "identityfile ${KEYS}/k", "pkcs11provider /usr/lib/p11.so"] {
        assert_eq!(key_offer(&format!("{NO_KEYS}{unknown}\n"), Some(&home), &no_agent), KeyOffer::Something);
    }
    std::fs::remove_dir_all(&home).unwrap();
}
