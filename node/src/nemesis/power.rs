//! Power loss: each node's data directory is a LazyFS mount, whose own
//! page cache holds every write until it is fsynced. Clearing that cache
//! while the node is down loses exactly what a power cut would, which a
//! SIGKILL alone never does (the kernel's page cache outlives the process).
//!
//! LazyFS is the FUSE file system Jepsen uses for this; how to build it
//! offline, and what it does and does not model (renames and directory
//! fsyncs go straight through), is in `../shared/lazyfs/README.md`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// LazyFS's cache per mount. Writes past a full cache go straight to disk
/// and survive a clear, so it is sized well above what a run leaves
/// unsynced (a node fsyncs every Ready).
const CACHE: &str = "128mb";
/// How long a mount or a cache clear may take.
const WAIT: Duration = Duration::from_secs(10);

/// One node's data directory on LazyFS.
pub struct PowerMount {
    child: Child,
    mount: PathBuf,
    faults: PathBuf,
    /// Held open for reading: LazyFS handles no command until a reader of
    /// its completion FIFO exists.
    done: File,
}

impl PowerMount {
    /// Mounts `mount` (created if missing) over `<mount>.root`, with
    /// LazyFS's configuration and FIFOs in `<mount>.lazyfs/`.
    ///
    /// # Errors
    ///
    /// LazyFS could not start, or the mount did not appear in time.
    pub fn start(lazyfs: &Path, mount: &Path) -> std::io::Result<PowerMount> {
        let root = mount.with_extension("root");
        let state = mount.with_extension("lazyfs");
        for dir in [mount, &root, &state] {
            fs::create_dir_all(dir)?;
        }
        let mount = mount.canonicalize()?;
        let config = state.join("config.toml");
        // LazyFS ignores a configuration path containing `-o`.
        if config.to_string_lossy().to_lowercase().contains("-o") {
            return Err(std::io::Error::other(format!(
                "LazyFS would ignore the configuration path {}: it contains `-o`",
                config.display()
            )));
        }
        let faults = state.join("faults.fifo");
        let done_path = state.join("done.fifo");
        fs::write(
            &config,
            format!(
                "[faults]\nfifo_path=\"{}\"\nfifo_path_completed=\"{}\"\n\
                 [cache]\napply_eviction=false\n[cache.simple]\ncustom_size=\"{CACHE}\"\nblocks_per_page=1\n\
                 [filesystem]\nlog_all_operations=false\nlogfile=\"{}\"\n",
                faults.display(),
                done_path.display(),
                state.join("lazyfs.log").display()
            ),
        )?;
        let child = Command::new(lazyfs)
            .arg(&mount)
            .arg("--config-path")
            .arg(&config)
            .arg("-o")
            .arg(format!(
                "modules=subdir,subdir={},auto_unmount",
                root.canonicalize()?.display()
            ))
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(state.join("stderr"))?)
            .spawn()?;
        let mut started = PowerMount {
            child,
            mount,
            faults,
            done: File::open("/dev/null")?,
        };
        started.done = started.wait_until_up(&done_path)?;
        Ok(started)
    }

    /// Waits for the mount and LazyFS's FIFOs; opens the completion FIFO.
    fn wait_until_up(&mut self, done_path: &Path) -> std::io::Result<File> {
        let deadline = Instant::now() + WAIT;
        loop {
            let mounted = fs::read_to_string("/proc/self/mountinfo")?
                .lines()
                .any(|l| l.split(' ').nth(4) == Some(&*self.mount.to_string_lossy()));
            if mounted && self.faults.exists() && done_path.exists() {
                return OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                    .open(done_path);
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "LazyFS exited ({status}) before mounting {}",
                    self.mount.display()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "LazyFS did not mount {} within {WAIT:?}",
                    self.mount.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Drops every write not yet fsynced, as a power cut would. The node
    /// on this mount must be down: LazyFS leaves open descriptors reading
    /// the cleared content.
    ///
    /// # Errors
    ///
    /// LazyFS did not confirm the clear in time.
    pub fn lose_power(&mut self) -> std::io::Result<()> {
        OpenOptions::new()
            .write(true)
            .open(&self.faults)?
            .write_all(b"lazyfs::clear-cache\n")?;
        let deadline = Instant::now() + WAIT;
        let mut heard = Vec::new();
        let mut buf = [0; 256];
        loop {
            match self.done.read(&mut buf) {
                Ok(n) => heard.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if String::from_utf8_lossy(&heard).contains("finished::clear-cache") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "LazyFS did not confirm clearing {} within {WAIT:?}",
                    self.mount.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Deletes everything on the mount, as a replaced disk would leave it.
    ///
    /// # Errors
    ///
    /// The files could not be removed.
    pub fn wipe(&self) -> std::io::Result<()> {
        for entry in fs::read_dir(&self.mount)? {
            let path = entry?.path();
            if path.is_dir() {
                fs::remove_dir_all(path)?;
            } else {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

impl Drop for PowerMount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mount)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + WAIT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
