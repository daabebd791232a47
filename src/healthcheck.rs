//! `tradeledger healthcheck`: asks a server on this machine for `/healthz` or `/readyz`, so
//! that a container's `HEALTHCHECK` needs no HTTP client in the image.
//!
//! It reads the same `TRADELEDGER_LISTEN` as `serve`, and asks an unspecified address
//! (`0.0.0.0`, `[::]`) on loopback. Exit status 0 when the answer is 200 (its body on standard
//! output), 1 otherwise with the reason on standard error: Docker reserves status 2.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// The most of an answer's body read: `/healthz` and `/readyz` answer a line of JSON.
const MAX_BODY: usize = 4096;

/// `tradeledger healthcheck`'s flags.
#[derive(Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// The address `serve` listens on (its --listen); an unspecified address is asked on
    /// loopback.
    #[arg(long, env = "TRADELEDGER_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// `healthz`: the process serves (also when degraded, which the body says); `readyz`: it
    /// takes writes.
    #[arg(long, env = "TRADELEDGER_HEALTHCHECK_PROBE", value_enum, default_value_t = Probe::Healthz)]
    pub probe: Probe,
    /// Seconds to wait for the whole answer (at most 60).
    #[arg(
        long,
        env = "TRADELEDGER_HEALTHCHECK_TIMEOUT",
        default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(1..=60)
    )]
    pub timeout: u64,
    /// `serve`'s --tls-cert, read from its environment variable only to refuse: the check
    /// speaks plain HTTP, and the port then speaks HTTPS.
    #[arg(long, env = "TRADELEDGER_TLS_CERT", hide = true)]
    pub tls_cert: Option<PathBuf>,
}

/// Which endpoint to ask.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Healthz,
    Readyz,
}

/// Why the check failed; `tradeledger healthcheck` exits with status 1 on it.
#[derive(Debug, thiserror::Error)]
#[error("unhealthy: {0}")]
pub struct Unhealthy(String);

/// The URL asked: `--listen`, on loopback when it is unspecified.
pub fn url(args: &HealthcheckArgs) -> String {
    let ip = match args.listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let path = match args.probe {
        Probe::Healthz => "healthz",
        Probe::Readyz => "readyz",
    };
    format!("http://{}/{path}", SocketAddr::new(ip, args.listen.port()))
}

/// Asks the server; the body of a 200 answer, or why not.
pub async fn check(args: &HealthcheckArgs) -> Result<String, Unhealthy> {
    if let Some(cert) = &args.tls_cert {
        return Err(Unhealthy(format!(
            "serve has TLS on {} (TRADELEDGER_TLS_CERT={}), and this check speaks plain HTTP: \
             give the container a health check of its own",
            args.listen,
            cert.display()
        )));
    }
    let url = url(args);
    let failed = |what: String| Unhealthy(format!("GET {url}: {what}"));
    // With its causes (reqwest's own message says only "error sending request"), and
    // without the URL, which leads the message already.
    let failed_with = |e: reqwest::Error| failed(format!("{:#}", anyhow::Error::new(e.without_url())));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        // An HTTP_PROXY in the container's environment must not carry a loopback request away.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(failed_with)?;
    let mut response = client.get(&url).send().await.map_err(failed_with)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed_with)? {
        body.extend_from_slice(&chunk[..chunk.len().min(MAX_BODY - body.len())]);
        if body.len() == MAX_BODY {
            break;
        }
    }
    let body = String::from_utf8_lossy(&body).trim().to_owned();
    if status != reqwest::StatusCode::OK {
        return Err(failed(format!("answered {status}: {body}")));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str, probe: Probe) -> HealthcheckArgs {
        HealthcheckArgs {
            listen: listen.parse().unwrap(),
            probe,
            timeout: 3,
            tls_cert: None,
        }
    }

    /// An unspecified address is asked on the loopback of its family; any other as it is.
    #[test]
    fn asks_an_unspecified_address_on_loopback() {
        assert_eq!(
            url(&args("0.0.0.0:8000", Probe::Healthz)),
            "http://127.0.0.1:8000/healthz"
        );
        assert_eq!(url(&args("[::]:9000", Probe::Readyz)), "http://[::1]:9000/readyz");
        assert_eq!(url(&args("10.1.2.3:80", Probe::Healthz)), "http://10.1.2.3:80/healthz");
        assert_eq!(
            url(&args("[fd00::1]:8000", Probe::Healthz)),
            "http://[fd00::1]:8000/healthz"
        );
    }
}
