//! Process faults observed by a client: the `chaos` binary runs as a child process (a TCP
//! server — its own HTTP API), and the test pauses, resumes and kills it by pid. Also drives
//! the CLI end to end against that child.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chaos::{process, ToxiproxyClient};

/// The child process, killed when the test ends however it ends.
struct ChildServer {
    child: Child,
    addr: SocketAddr,
}

impl ChildServer {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chaos"))
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        ChildServer { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn client(&self) -> ToxiproxyClient {
        ToxiproxyClient::new(format!("http://{}", self.addr))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = process::resume(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_paused_process_stalls_requests_until_it_is_resumed() {
    let server = ChildServer::start();
    let client = server.client();
    client.version().await.unwrap();

    process::pause(server.pid()).unwrap();
    let stalled = tokio::time::timeout(Duration::from_millis(500), client.version()).await;
    assert!(
        stalled.is_err(),
        "a request to a paused process must stall: {stalled:?}"
    );

    let pending = tokio::spawn({
        let client = client.clone();
        async move {
            let start = Instant::now();
            client.version().await.map(|_| start.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    process::resume(server.pid()).unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(3), pending)
        .await
        .expect("the request proceeds after SIGCONT")
        .unwrap()
        .unwrap();
    eprintln!("request held by the pause for {waited:?}");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
}

#[tokio::test]
async fn a_killed_process_refuses_connections() {
    let mut server = ChildServer::start();
    server.client().version().await.unwrap();
    process::kill(server.pid()).unwrap();
    let status = server.child.wait().unwrap();
    assert!(!status.success());
    let err = tokio::net::TcpStream::connect(server.addr)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn the_cli_drives_a_running_proxy_server() {
    let server = ChildServer::start();
    let api = format!("http://{}", server.addr);
    let chaos = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chaos"))
            .arg("--api")
            .arg(&api)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chaos {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = upstream.local_addr().unwrap().to_string();
    chaos(&[
        "proxy",
        "create",
        "redis",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
    ]);
    chaos(&[
        "toxic",
        "add",
        "redis",
        "--type",
        "latency",
        "--stream",
        "downstream",
        "--toxicity",
        "1",
        "-a",
        "latency=200",
        "-a",
        "jitter=50",
    ]);
    let list = chaos(&["list"]);
    assert!(list.contains("latency_downstream"), "{list}");
    assert!(list.contains(r#""latency":200"#), "{list}");
    chaos(&["proxy", "disable", "redis"]);
    assert!(!server.client().proxy("redis").await.unwrap().enabled);
    chaos(&["proxy", "enable", "redis"]);
    chaos(&["toxic", "remove", "redis", "latency_downstream"]);
    assert!(server.client().toxics("redis").await.unwrap().is_empty());
    chaos(&["reset"]);
}

#[test]
fn a_container_target_without_docker_says_so_clearly() {
    // A daemon at a socket that does not exist is absent whatever runs on this machine.
    let out = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["process", "kill", "--container", "redis"])
        .env(
            "DOCKER_HOST",
            "unix:///nonexistent/box-office-lab/docker.sock",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Docker is not available"), "{stderr}");
}
