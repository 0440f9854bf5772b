//! A real browser for the console's tests: Debian's Chromium, headless,
//! driven through Debian's `chromedriver` with fantoccini, and what each
//! page logged to the browser's console.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::binary::free_port;

/// chromedriver, started on a free port and killed when dropped.
pub struct Driver {
    _process: tokio::process::Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Driver {
    pub async fn start() -> Self {
        let port = free_port();
        let process = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (Debian: apt-get install chromium chromium-driver)");
        let status = format!("http://127.0.0.1:{port}/status");
        for _ in 0..100 {
            if reqwest::get(&status).await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            _process: process,
            port,
            _profile: tempfile::tempdir().unwrap(),
        }
    }

    pub async fn browser(&self) -> Client {
        let profile = self._profile.path().display().to_string();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={profile}"),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        // Two TLS backends are in the test build (fantoccini's never used:
        // chromedriver is plain HTTP); name one.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session starts")
    }
}

/// chromedriver's browser log since the last read (`se/log`).
#[derive(Debug)]
pub struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// The console in a browser, with what its pages logged.
pub struct Console {
    pub browser: Client,
    pub base: String,
    pub errors: Vec<String>,
    pub shots: PathBuf,
}

impl Console {
    pub async fn open(&mut self, path: &str) {
        self.browser
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
        self.read_log(path).await;
    }

    /// Takes what the page logged; errors are kept (with the page).
    pub async fn read_log(&mut self, page: &str) {
        let log = self.browser.issue_cmd(BrowserLog).await.unwrap();
        for entry in log.as_array().into_iter().flatten() {
            if entry["level"] == "SEVERE" {
                self.errors.push(format!("{page}: {}", entry["message"]));
            }
        }
    }

    /// The text of `css`, read again if htmx replaced it meanwhile.
    pub async fn text(&self, css: &str) -> String {
        let mut last = None;
        for _ in 0..10 {
            match self.browser.find(Locator::Css(css)).await {
                Ok(found) => match found.text().await {
                    Ok(text) => return text,
                    Err(e) => last = Some(e),
                },
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css}: {last:?}");
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.browser.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks and waits for the page it leads to; reads that page's log.
    pub async fn submit(&mut self, css: &str) {
        let button = self.browser.find(Locator::Css(css)).await;
        let button = button.unwrap_or_else(|e| panic!("{css}: {e}"));
        // Marks the page, so the next one is known by not having the mark.
        self.browser
            .execute("window.__before_submit = true", vec![])
            .await
            .unwrap();
        button.click().await.unwrap();
        self.loaded(css).await;
        self.read_log(css).await;
    }

    /// Waits until a new page replaced the marked one and finished loading.
    pub async fn loaded(&self, what: &str) {
        let script = "return !window.__before_submit && document.readyState === 'complete'";
        for _ in 0..100 {
            if let Ok(Value::Bool(true)) = self.browser.execute(script, vec![]).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: no new page");
    }

    pub async fn path(&self) -> String {
        self.browser.current_url().await.unwrap().path().to_owned()
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.browser.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits until `css` no longer holds `gone` (htmx swapped it out).
    pub async fn until_gone(&self, css: &str, gone: &str) -> String {
        let mut text = String::new();
        for _ in 0..50 {
            text = self.text(css).await;
            if !text.contains(gone) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} still shows {gone:?}: {text}");
    }
}
