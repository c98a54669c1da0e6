//! The twin's ingress: nginx terminating TLS for broxiva.com,
//! www.broxiva.com and api.broxiva.com with certificates of the twin's CA
//! (the ones cert-manager would have written into the Secrets), the www →
//! apex redirect, HSTS and the usual security headers, proxying to the
//! API and web tiers. Killed on drop; its config can be rewritten and
//! reloaded to inject a fault.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;

/// What nginx serves; a fault changes one field and reloads.
#[derive(Clone, Debug)]
pub struct IngressSpec {
    pub api_upstream: u16,
    pub web_upstream: u16,
    pub www_redirects: bool,
    pub hsts: bool,
    /// Certificate and key files per server name group.
    pub api_cert: (PathBuf, PathBuf),
    pub web_cert: (PathBuf, PathBuf),
    /// The container registry's front (ACR answers `/v2/` and its token
    /// service, `/oauth2/exchange` and `/oauth2/token`, under one name).
    pub acr: Option<AcrFront>,
}

#[derive(Clone, Debug)]
pub struct AcrFront {
    pub cert: (PathBuf, PathBuf),
    /// docker-registry's plain-HTTP port.
    pub registry: u16,
    /// The token service's plain-HTTP port.
    pub token_service: u16,
}

fn acr_server(port: u16, acr: &AcrFront) -> String {
    format!(
        "    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {};
        ssl_certificate {};
        ssl_certificate_key {};
        ssl_protocols TLSv1.2 TLSv1.3;
        client_max_body_size 0;
        location /v2/ {{
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_pass http://127.0.0.1:{};
        }}
        location /oauth2/ {{
            proxy_set_header Host $host;
            proxy_pass http://127.0.0.1:{};
        }}
    }}
",
        super::cluster::REGISTRY,
        acr.cert.0.display(),
        acr.cert.1.display(),
        acr.registry,
        acr.token_service
    )
}

pub struct Ingress {
    dir: PathBuf,
    pub port: u16,
    child: Child,
    pub spec: IngressSpec,
}

const SECURITY_HEADERS: &str = "
        add_header X-Frame-Options SAMEORIGIN always;
        add_header X-Content-Type-Options nosniff always;
        add_header Referrer-Policy strict-origin-when-cross-origin always;";

fn config(dir: &Path, port: u16, spec: &IngressSpec) -> String {
    let hsts = if spec.hsts {
        "add_header Strict-Transport-Security \"max-age=31536000; includeSubDomains\" always;"
    } else {
        ""
    };
    let www = if spec.www_redirects {
        "return 301 https://broxiva.com$request_uri;".to_string()
    } else {
        format!("proxy_pass http://127.0.0.1:{};", spec.web_upstream)
    };
    let server = |names: &str, cert: &(PathBuf, PathBuf), body: &str| {
        format!(
            "    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {names};
        ssl_certificate {};
        ssl_certificate_key {};
        ssl_protocols TLSv1.2 TLSv1.3;
        {hsts}{SECURITY_HEADERS}
        location / {{
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
            {body}
        }}
    }}
",
            cert.0.display(),
            cert.1.display()
        )
    };
    format!(
        "worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_connect_timeout 2s;
    proxy_read_timeout 10s;
{}{}{}{}}}
",
        server(
            "api.broxiva.com",
            &spec.api_cert,
            &format!("proxy_pass http://127.0.0.1:{};", spec.api_upstream)
        ),
        server(
            "broxiva.com",
            &spec.web_cert,
            &format!("proxy_pass http://127.0.0.1:{};", spec.web_upstream)
        ),
        server("www.broxiva.com", &spec.web_cert, &www),
        spec.acr
            .as_ref()
            .map(|acr| acr_server(port, acr))
            .unwrap_or_default(),
        dir = dir.display(),
    )
}

impl Ingress {
    pub fn start(dir: &Path, spec: IngressSpec) -> Ingress {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config(dir, port, &spec)).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed (scripts/test.sh installs nginx-light)");
        let ingress = Ingress {
            dir: dir.to_path_buf(),
            port,
            child,
            spec,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ingress
    }

    /// Rewrites the config with `spec` and reloads (SIGHUP); returns once
    /// the new workers serve.
    pub fn reload(&mut self, spec: IngressSpec) {
        std::fs::write(
            self.dir.join("nginx.conf"),
            config(&self.dir, self.port, &spec),
        )
        .unwrap();
        self.spec = spec;
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        super::super::nginx::terminate(&mut self.child);
    }
}
