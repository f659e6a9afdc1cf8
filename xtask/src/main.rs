//! `cargo xtask`: project automation.
//!
//! - `cargo xtask tools`: installs the test tools into the git-ignored `<repo>/.tools/`: a Python
//!   venv with the pinned clients of `xtask/requirements.txt` (boto3, the AWS CLI v1, moto's
//!   server, s3cmd, the MinIO SDK, the OpenBao CLI). Fast when they are already there: a stamp
//!   file holds a hash of the requirements and of the Python used, and the venv is built anew
//!   when either changes.
//! - `cargo xtask test`: installs the tools, builds the gateway example, then runs every test of
//!   the workspace with all features (nextest when installed, plus the doc tests), with
//!   `S3_TOWER_TOOLS`, `S3_TOWER_GATEWAY_BIN` and `PATH` set for the end-to-end tests. Running
//!   as root on a machine with apt and without rclone, it first installs rclone with apt (the
//!   rclone end-to-end tests are skipped, with a note, where rclone is missing).
//! - `cargo xtask bench`: runs `cargo bench`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};

/// The file in the venv that records what it was built from.
const STAMP_FILE: &str = ".s3-tower-requirements.stamp";

/// Wheels installed without their dependencies and despite their `Requires-Python`, which a
/// requirements file cannot say. `opa-golib-python-bindings` carries the real OPA (its Go
/// library as a shared object, with a ctypes wrapper) and declares Python >= 3.14, though
/// its wrapper runs on the CPython 3.11 of these machines; the Rego differential test needs
/// it. It has no dependencies.
const PYTHON_VERSION_EXEMPT: &[&str] = &["opa-golib-python-bindings==0.4.4"];

/// Executables the venv must hold for the tests.
const REQUIRED_TOOLS: &[&str] = &["python", "aws", "moto_server", "s3cmd", "bao"];

#[derive(Parser)]
#[command(name = "cargo xtask", about = "s3-tower project automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the test tools into `<repo>/.tools/` (a Python venv with pinned clients).
    Tools {
        /// Rebuild the venv even when it is up to date.
        #[arg(long)]
        force: bool,
    },
    /// Install the tools, build the gateway example and run the whole test suite.
    Test {
        /// Use `cargo test` even when cargo-nextest is installed.
        #[arg(long)]
        no_nextest: bool,
        /// Extra arguments for the test runner (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks (`cargo bench`).
    Bench {
        /// Extra arguments for `cargo bench` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Tools { force } => Repo::locate().and_then(|repo| repo.install_tools(force)),
        Cmd::Test { no_nextest, args } => {
            Repo::locate().and_then(|repo| repo.test(no_nextest, &args))
        }
        Cmd::Bench { args } => Repo::locate().and_then(|repo| repo.bench(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = (), E = String> = std::result::Result<T, E>;

struct Repo {
    root: PathBuf,
    cargo: OsString,
}

impl Repo {
    fn locate() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("xtask's manifest directory has no parent")?
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Ok(Self { root, cargo })
    }

    fn tools_dir(&self) -> PathBuf {
        self.root.join(".tools")
    }

    fn venv_dir(&self) -> PathBuf {
        self.tools_dir().join("venv")
    }

    fn venv_bin(&self) -> PathBuf {
        self.venv_dir().join("bin")
    }

    fn cargo(&self) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(&self.root);
        cmd
    }

    /// Makes sure `.tools/venv` holds exactly the pinned requirements.
    fn install_tools(&self, force: bool) -> Result {
        let requirements_path = self.root.join("xtask").join("requirements.txt");
        let requirements = std::fs::read_to_string(&requirements_path)
            .map_err(|e| format!("cannot read {}: {e}", requirements_path.display()))?;
        let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
        let python_id = capture(Command::new(&python).args([
            "-c",
            "import sys; print(sys.executable); print(sys.version)",
        ]))
        .map_err(|e| {
            format!("{e}\nPython 3 with the venv module is needed (set PYTHON to choose one)")
        })?;
        // The stamp is what was installed: the requirements and the interpreter.
        let stamp = format!(
            "{python_id}\n{requirements}\n{}",
            PYTHON_VERSION_EXEMPT.join("\n")
        );

        let venv = self.venv_dir();
        let stamp_path = venv.join(STAMP_FILE);
        let complete = REQUIRED_TOOLS
            .iter()
            .all(|tool| self.venv_bin().join(tool).exists());
        if !force && complete && std::fs::read_to_string(&stamp_path).ok() == Some(stamp.clone()) {
            eprintln!("xtask: tools up to date in {}", self.tools_dir().display());
            return Ok(());
        }

        let started = Instant::now();
        eprintln!(
            "xtask: installing the pinned test tools of {} into {}",
            requirements_path.display(),
            venv.display()
        );
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .map_err(|e| format!("cannot remove the old {}: {e}", venv.display()))?;
        }
        std::fs::create_dir_all(self.tools_dir())
            .map_err(|e| format!("cannot create {}: {e}", self.tools_dir().display()))?;
        run(Command::new(&python).arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(self.venv_bin().join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "--requirement",
            ])
            .arg(&requirements_path))?;
        run(Command::new(self.venv_bin().join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "--no-deps",
                "--ignore-requires-python",
            ])
            .args(PYTHON_VERSION_EXEMPT))?;
        if let Some(missing) = REQUIRED_TOOLS
            .iter()
            .find(|tool| !self.venv_bin().join(tool).exists())
        {
            return Err(format!(
                "the venv was installed but has no `{missing}` in {}",
                self.venv_bin().display()
            ));
        }
        std::fs::write(&stamp_path, stamp)
            .map_err(|e| format!("cannot write {}: {e}", stamp_path.display()))?;
        eprintln!(
            "xtask: tools installed in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The target directory cargo uses (honours `CARGO_TARGET_DIR` and `build.target-dir`).
    fn target_dir(&self) -> Result<PathBuf> {
        let metadata =
            capture(
                self.cargo()
                    .args(["metadata", "--format-version", "1", "--no-deps"]),
            )?;
        let metadata: serde_json::Value = serde_json::from_str(&metadata)
            .map_err(|e| format!("`cargo metadata` printed invalid JSON: {e}"))?;
        metadata["target_directory"]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| "`cargo metadata` printed no target_directory".to_owned())
    }

    fn test(&self, no_nextest: bool, args: &[String]) -> Result {
        let started = Instant::now();
        self.install_tools(false)?;
        install_rclone_with_apt();

        eprintln!("xtask: building the gateway example");
        run(self
            .cargo()
            .args(["build", "--example", "gateway", "--all-features"]))?;
        let gateway = self
            .target_dir()?
            .join("debug")
            .join("examples")
            .join(format!("gateway{}", std::env::consts::EXE_SUFFIX));
        if !gateway.is_file() {
            return Err(format!(
                "`cargo build --example gateway` succeeded but {} does not exist",
                gateway.display()
            ));
        }

        let mut path = vec![self.venv_bin()];
        if let Some(old) = std::env::var_os("PATH") {
            path.extend(std::env::split_paths(&old));
        }
        let path = std::env::join_paths(path).map_err(|e| format!("cannot build PATH: {e}"))?;
        let with_env = |mut cmd: Command| {
            cmd.env("S3_TOWER_TOOLS", self.tools_dir())
                .env("S3_TOWER_GATEWAY_BIN", &gateway)
                .env("PATH", &path);
            cmd
        };

        let nextest = !no_nextest && self.has_nextest();
        let mut failures = Vec::new();
        if nextest {
            let mut cmd = with_env(self.cargo());
            cmd.args([
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--no-tests=warn",
                "--no-fail-fast",
            ])
            .args(args);
            failures.extend(run(&mut cmd).err());
            // nextest does not run doc tests. Extra arguments are nextest filters: with them
            // only the selected tests run.
            if args.is_empty() {
                let mut doc = with_env(self.cargo());
                doc.args(["test", "--doc", "--workspace", "--all-features"]);
                failures.extend(run(&mut doc).err());
            }
        } else {
            let mut cmd = with_env(self.cargo());
            cmd.args(["test", "--workspace", "--all-features", "--no-fail-fast"]);
            if !args.is_empty() {
                cmd.arg("--").args(args);
            }
            failures.extend(run(&mut cmd).err());
        }
        let elapsed = started.elapsed().as_secs_f64();
        if failures.is_empty() {
            eprintln!("xtask: all tests passed in {elapsed:.1}s");
            Ok(())
        } else {
            Err(format!(
                "tests failed after {elapsed:.1}s:\n  {}",
                failures.join("\n  ")
            ))
        }
    }

    fn has_nextest(&self) -> bool {
        self.cargo()
            .args(["nextest", "--version"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn bench(&self, args: &[String]) -> Result {
        run(self.cargo().args(["bench", "--workspace"]).args(args))
    }
}

/// Installs rclone with apt when it is missing and this process runs as root on a machine with
/// apt-get (as in CI containers); otherwise does nothing. A failed installation is a warning:
/// the rclone tests then skip with a note.
fn install_rclone_with_apt() {
    let found = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if found("rclone", "version") || !found("apt-get", "--version") {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"0");
    if !root {
        return;
    }
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    let installed = apt(&["install", "-y", "--no-install-recommends", "rclone"]).or_else(|_| {
        // No package lists yet (a fresh container): fetch them and try again.
        apt(&["update"])?;
        apt(&["install", "-y", "--no-install-recommends", "rclone"])
    });
    if let Err(e) = installed {
        eprintln!("xtask: warning: could not install rclone ({e}); its tests will be skipped");
    }
}

/// Runs a command, inheriting stdio; a failure names the command.
fn run(cmd: &mut Command) -> Result {
    let shown = show(cmd);
    eprintln!("xtask: running {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// Runs a command and returns its standard output.
fn capture(cmd: &mut Command) -> Result<String> {
    let shown = show(cmd);
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{shown} failed ({})", out.status));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{shown} printed no UTF-8"))
}

fn show(cmd: &Command) -> String {
    let mut s = format!("`{}", cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        let _ = write!(s, " {}", arg.to_string_lossy());
    }
    s.push('`');
    s
}
