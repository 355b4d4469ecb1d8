//! Test hosts that boot as virtual machines, for what a container test host cannot
//! have: the kernel of these machines has no IPVS and loads no module, and Swarm's
//! routing mesh needs IPVS. A VM boots Debian 12's cloud kernel with the Docker 28 test
//! host's files as its initramfs (`tests/vm/`), so it runs the same sshd, entrypoint and
//! engine as the container hosts, and loads the modules it needs.
//!
//! qemu runs with software emulation (TCG): `/dev/kvm` exists here, but qemu with KVM
//! aborts on these machines. Each VM has two network cards: qemu's user network, with
//! the VM's ports 22, 80 and 443 forwarded to free ports on 127.0.0.1 (as the container
//! hosts publish theirs), and a link to the other VM of its pair (a qemu socket netdev
//! on 127.0.0.1, 192.168.77.0/24), which Swarm's overlay and mesh traffic crosses.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xtask::support::command::Cmd;

use crate::hosts::{self, Engine};
use crate::{docker, label_args, project};

const QEMU: &str = "qemu-system-x86_64";
/// Enough for the initramfs (about 750 MB, held in memory), the three images and the stack.
const MEMORY_MB: &str = "4096";
/// How long the cpio step may take.
const EXPORT_LIMIT: Duration = Duration::from_secs(600);
/// The link between the two VMs of a pair: VM n is 192.168.77.n.
const LINK_PREFIX: &str = "192.168.77";

/// The boot files of the VM test host, built once per content of `tests/vm/` and of the
/// images it starts from (under `target/cultivate/vm/`).
struct BootFiles {
    kernel: PathBuf,
    initramfs: PathBuf,
}

/// One running qemu: killed (and reaped) when dropped, and by the kernel if the test
/// process dies first (PR_SET_PDEATHSIG).
#[derive(Debug)]
pub struct Machine {
    child: Mutex<Child>,
    /// The VM's serial console: the kernel's messages, init's, sshd's and the entrypoint's.
    pub console: PathBuf,
    /// qemu's own messages.
    errors: PathBuf,
}

impl Machine {
    pub fn running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.try_wait(), Ok(None))
    }

    /// qemu's messages and the console's last `lines` lines, for error messages.
    pub fn console_tail(&self, lines: usize) -> String {
        let tail = |path: &Path| xtask::support::command::tail_of_file(path, lines);
        format!("qemu:\n{}\nconsole:\n{}", tail(&self.errors), tail(&self.console))
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let _ = fs::remove_file(&self.console);
        let _ = fs::remove_file(&self.errors);
    }
}

/// A booting VM: its machine and the 127.0.0.1 ports forwarded to its 22, 80 and 443.
pub struct Booting {
    pub name: String,
    pub machine: Machine,
    pub ssh_port: u16,
    pub http_port: u16,
    pub https_port: u16,
}

/// Starts two linked VMs (returns as soon as qemu runs; the hosts wait for sshd).
/// `public_key` is the one line of an OpenSSH public key every user of the VMs accepts.
pub fn boot_pair(public_key: &str) -> Result<[Booting; 2]> {
    let files = boot_files()?;
    let mut key = public_key.split_whitespace();
    let (Some(key_type), Some(key_blob)) = (key.next(), key.next()) else {
        bail!("not an OpenSSH public key: {public_key:?}");
    };
    let link_port = free_port()?;
    let first = boot(files, 1, key_type, key_blob, &format!("listen=127.0.0.1:{link_port}"))?;
    // The second VM's link connects to the first's, which must be listening by then.
    wait_listening(link_port, &first.machine)?;
    let second = boot(files, 2, key_type, key_blob, &format!("connect=127.0.0.1:{link_port}"))?;
    Ok([first, second])
}

fn boot(files: &BootFiles, index: u8, key_type: &str, key_blob: &str, link: &str) -> Result<Booting> {
    let name = format!("vm{index}-{}", std::process::id());
    let (ssh_port, http_port, https_port) = (free_port()?, free_port()?, free_port()?);
    let console = std::env::temp_dir().join(format!("cultivate-{name}-console.log"));
    let errors = console.with_extension("qemu.log");
    let stderr = fs::File::create(&errors).with_context(|| format!("creating {}", errors.display()))?;
    let forwards = format!(
        "user,id=user,hostfwd=tcp:127.0.0.1:{ssh_port}-:22,hostfwd=tcp:127.0.0.1:{http_port}-:80,\
         hostfwd=tcp:127.0.0.1:{https_port}-:443"
    );
    let append = format!(
        "console=ttyS0 rdinit=/init VM_NAME={name} VM_LINK_ADDRESS={LINK_PREFIX}.{index} \
         SSH_KEY_TYPE={key_type} SSH_KEY_BLOB={key_blob}"
    );
    let mut command = Command::new(QEMU);
    command
        .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", MEMORY_MB, "-no-reboot"])
        .args(["-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&files.kernel)
        .arg("-initrd")
        .arg(&files.initramfs)
        .args(["-append", &append])
        .args(["-netdev", &forwards])
        .args(["-device", &format!("virtio-net-pci,netdev=user,mac=52:54:00:00:00:0{index}")])
        .args(["-netdev", &format!("socket,id=link,{link}")])
        .args(["-device", &format!("virtio-net-pci,netdev=link,mac=52:54:00:00:01:0{index}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: prctl is async-signal-safe; it only asks for SIGKILL when this thread ends.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = command.spawn().with_context(|| format!("starting {QEMU} for {name}"))?;
    Ok(Booting {
        name,
        machine: Machine { child: Mutex::new(child), console, errors },
        ssh_port,
        http_port,
        https_port,
    })
}

/// Waits (bounded) until qemu listens on `port`, checking with `ss` (a probe connection
/// would be taken for the other VM).
fn wait_listening(port: u16, machine: &Machine) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listening = Cmd::new("ss").args(["-Hltn", &format!("sport = :{port}")]).output()?;
        if !listening.trim().is_empty() {
            return Ok(());
        }
        if !machine.running() {
            bail!("{QEMU} exited before listening on 127.0.0.1:{port}:\n{}", machine.console_tail(20));
        }
        if Instant::now() >= deadline {
            bail!("{QEMU} did not listen on 127.0.0.1:{port} in 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port free on 127.0.0.1 now (qemu binds it a moment later).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").context("finding a free port")?.local_addr()?.port())
}

fn boot_files() -> Result<&'static BootFiles> {
    static FILES: OnceLock<Result<BootFiles, String>> = OnceLock::new();
    FILES.get_or_init(|| build_boot_files().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

fn build_boot_files() -> Result<BootFiles> {
    if Command::new(QEMU).arg("--version").stdout(Stdio::null()).status().is_err() {
        bail!(
            "the routing-mesh test boots its hosts as virtual machines and needs {QEMU}, which is not installed: \
             `cargo xtask verify --install` installs it (or `apt-get install qemu-system-x86`)"
        );
    }
    let host_image = hosts::engine_image(Engine::Docker28)?;
    let kernel_base = hosts::base_image()?;
    let dir = project().path("tests/vm");
    let hash = hosts::content_hash(&dir, &format!("{host_image} {kernel_base}"))?;
    let tag = format!("cultivate-vmhost:{}", &hash[..12]);
    if docker(["image", "inspect", "--format", "{{.Id}}", tag.as_str()]).is_err() {
        hosts::build(&dir, &[("HOST_IMAGE", &host_image), ("KERNEL_BASE", &kernel_base)], &tag)?;
    }
    let out = project().state_dir().join("vm");
    let files = BootFiles {
        kernel: out.join(format!("vmlinuz-{}", &hash[..12])),
        initramfs: out.join(format!("root-{}.cpio", &hash[..12])),
    };
    if files.kernel.exists() && files.initramfs.exists() {
        return Ok(files);
    }
    // Boot files of other contents are stale: each initramfs is about 750 MB.
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let started = Instant::now();
    export(&tag, "cat /boot/vmlinuz", &files.kernel)?;
    // -xdev: the image's own files, not the container's /proc, /sys and /dev.
    export(&tag, "cd / && find . -xdev | cpio -o -H newc --quiet", &files.initramfs)?;
    eprintln!("wrote the VM boot files of {tag} in {:.1?} ({})", started.elapsed(), out.display());
    Ok(files)
}

/// Writes the stdout of `script`, run in a throw-away container of `image`, to `path`
/// (through a temporary file, so that an interrupted run leaves no partial file).
fn export(image: &str, script: &str, path: &Path) -> Result<()> {
    let partial = path.with_extension("partial");
    let file = fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut args = vec!["run".to_string(), "--rm".to_string()];
    args.extend(label_args());
    args.extend(["--entrypoint", "sh", image, "-c", script].map(String::from));
    let mut child = Command::new("docker")
        .args(&args)
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting docker run for the VM boot files")?;
    let deadline = Instant::now() + EXPORT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`docker run … {script}` did not finish in {EXPORT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        bail!("`docker run … {script}` in {image} failed: {}", stderr.trim());
    }
    fs::rename(&partial, path).with_context(|| format!("renaming {}", partial.display()))?;
    Ok(())
}
