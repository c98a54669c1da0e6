//! The object store of one run, built with the credentials as they are
//! now, with its answers held to a size limit.

use super::*;

impl BackupProbe {
    pub(super) async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        ctx.progress.set("reading credentials");
        let mut secrets = Vec::new();
        // Secret files are read here: not on an async worker, so one that
        // blocks leaves the run to its timeout.
        let store = crate::probe::http::off_the_workers(|| self.store(&mut secrets));
        let outcome = match store {
            Ok(store) => self.check(ctx, store.as_ref()).await,
            Err(f) if f.reason == Reason::BackupMissing => f.into_fail(),
            Err(f) => f.into_error(),
        };
        scrub_outcome(outcome, &secrets)
    }

    /// The store for this run, built with the credentials as they are now
    /// (a rotated file is picked up). Every secret read is pushed to
    /// `secrets`, for scrubbing.
    pub(super) fn store(&self, secrets: &mut Vec<String>) -> Result<Arc<dyn ObjectStore>, Failure> {
        let built = match &self.location {
            Location::Local { root } => {
                if !root.is_dir() {
                    return Err(Failure::new(
                        Reason::BackupMissing,
                        format!("{} is not a directory (not mounted?)", root.display()),
                    ));
                }
                object_store::local::LocalFileSystem::new_with_prefix(root)
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            Location::Azure { container, account } => {
                crate::clients::tls_configs::install_default_provider();
                self.azure(container, account, secrets)?
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            Location::S3 { bucket } => {
                crate::clients::tls_configs::install_default_provider();
                self.s3(bucket, secrets)?
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            Location::Gcs { bucket } => {
                crate::clients::tls_configs::install_default_provider();
                self.gcs(bucket, secrets)?
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
        };
        built.map_err(|err| {
            let f = classify(&err, self.request_timeout);
            Failure::new(
                if f.reason == Reason::Protocol {
                    Reason::Secret
                } else {
                    f.reason
                },
                format!(
                    "cannot set up the client for {}: {}",
                    self.display, f.message
                ),
            )
        })
    }

    fn client_options(&self) -> ClientOptions {
        let mut options = ClientOptions::new()
            .with_timeout(self.request_timeout)
            .with_connect_timeout(self.request_timeout);
        if self
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
        {
            options = options.with_allow_http(true);
        }
        options
    }

    /// object_store retries for up to three minutes by default; here a
    /// failed request is tried once more, soon, and a request that hung
    /// is not (its time is already spent).
    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(500),
                base: 2.0,
            },
            max_retries: 1,
            retry_timeout: self.request_timeout,
        }
    }

    fn azure(
        &self,
        container: &str,
        account: &str,
        secrets: &mut Vec<String>,
    ) -> Result<object_store::azure::MicrosoftAzureBuilder, Failure> {
        let mut builder = match &self.credentials {
            Credentials::Environment => object_store::azure::MicrosoftAzureBuilder::from_env(),
            _ => object_store::azure::MicrosoftAzureBuilder::new(),
        }
        .with_account(account)
        .with_container_name(container)
        .with_http_connector(LimitedConnector)
        .with_client_options(self.client_options())
        .with_retry(self.retry());
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        match &self.credentials {
            Credentials::AzureKey(source) => {
                builder = builder.with_access_key(read_secret(source, secrets)?);
            }
            Credentials::AzureSas(source) => {
                let token = read_secret(source, secrets)?;
                builder = builder.with_sas_authorization(sas_pairs(&token, secrets)?);
            }
            _ => {}
        }
        Ok(builder)
    }

    fn s3(
        &self,
        bucket: &str,
        secrets: &mut Vec<String>,
    ) -> Result<object_store::aws::AmazonS3Builder, Failure> {
        let mut builder = match &self.credentials {
            Credentials::Environment => object_store::aws::AmazonS3Builder::from_env(),
            _ => object_store::aws::AmazonS3Builder::new(),
        }
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(!self.path_style)
        .with_http_connector(LimitedConnector)
        .with_client_options(self.client_options())
        .with_retry(self.retry());
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        } else if !matches!(self.credentials, Credentials::Environment) {
            builder = builder.with_region("us-east-1");
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Credentials::S3Keys { id, secret, token } = &self.credentials {
            builder = builder
                .with_access_key_id(read_secret(id, secrets)?)
                .with_secret_access_key(read_secret(secret, secrets)?);
            if let Some(token) = token {
                builder = builder.with_token(read_secret(token, secrets)?);
            }
        }
        Ok(builder)
    }

    fn gcs(
        &self,
        bucket: &str,
        secrets: &mut Vec<String>,
    ) -> Result<object_store::gcp::GoogleCloudStorageBuilder, Failure> {
        let mut builder = match &self.credentials {
            Credentials::Environment => object_store::gcp::GoogleCloudStorageBuilder::from_env(),
            _ => object_store::gcp::GoogleCloudStorageBuilder::new(),
        }
        .with_bucket_name(bucket)
        .with_http_connector(LimitedConnector)
        .with_client_options(self.client_options())
        .with_retry(self.retry());
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_base_url(endpoint);
        }
        if let Credentials::GcsKey(source) = &self.credentials {
            let key = read_secret(source, secrets)?;
            // The private key inside, as it would appear in text.
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&key) {
                for field in ["private_key", "private_key_id"] {
                    if let Some(value) = json[field].as_str() {
                        secrets.push(value.to_string());
                    }
                }
            }
            builder = builder.with_service_account_key(key);
        }
        Ok(builder)
    }
}

/// The secret in `source` as it is now, trimmed, and pushed to `secrets`
/// for scrubbing.
fn read_secret(source: &SecretSource, secrets: &mut Vec<String>) -> Result<String, Failure> {
    let secret = source
        .read()
        .map_err(|err| Failure::new(Reason::Secret, err.to_string()))?;
    let value = secret.expose().trim().to_string();
    secrets.push(value.clone());
    Ok(value)
}

/// A SAS token's `key=value` pairs, decoded. The signature as sent
/// (decoded) is pushed to `secrets` too; the other fields (version,
/// expiry) are no secret.
fn sas_pairs(token: &str, secrets: &mut Vec<String>) -> Result<Vec<(String, String)>, Failure> {
    let pairs: Vec<(String, String)> = token
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect();
    if pairs.is_empty() {
        return Err(Failure::new(
            Reason::Secret,
            "the SAS token is not key=value pairs",
        ));
    }
    secrets.extend(
        pairs
            .iter()
            .filter(|(k, _)| k == "sig")
            .map(|(_, v)| v.clone()),
    );
    Ok(pairs)
}

/// Largest answer the check reads from the store. A listing page is at
/// most a few megabytes (Azure: 5000 blobs, S3: 1000 keys); object_store
/// itself reads answers whole, without a limit.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// An answer cut off at [`MAX_RESPONSE_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("the answer was larger than {}", ByteSize(.0.to_owned() as u64))]
pub(super) struct AnswerTooLarge(pub(super) usize);

/// object_store's own reqwest client, with every answer's body limited.
#[derive(Debug)]
pub(super) struct LimitedConnector;

impl HttpConnector for LimitedConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = match mapped_client(options)? {
            Some(client) => HttpClient::new(client),
            None => ReqwestConnector::default().connect(options)?,
        };
        Ok(HttpClient::new(LimitedService { inner }))
    }
}

/// With `--connect-to` rules for port 443 or 80 (a store URL's default
/// ports), the reqwest client is built here with those rules as name
/// overrides: connections go to the rule's address while the URL, the
/// TLS server name and the Host header stay the store's. object_store's
/// own transport has no such hook (its DNS resolver cannot change the
/// port). The options carried over are the ones vouch and object_store
/// set: the timeouts and whether plain HTTP is allowed.
fn mapped_client(options: &ClientOptions) -> object_store::Result<Option<reqwest::Client>> {
    use object_store::ClientConfigKey;
    let overrides = crate::connect_to::name_overrides(&[443, 80]);
    if overrides.is_empty() {
        return Ok(None);
    }
    let duration = |key: ClientConfigKey| {
        options
            .get_config_value(&key)
            .and_then(|text| humantime::parse_duration(&text).ok())
    };
    let mut builder = reqwest::ClientBuilder::new();
    if let Some(timeout) = duration(ClientConfigKey::Timeout) {
        builder = builder.timeout(timeout);
    }
    if let Some(timeout) = duration(ClientConfigKey::ConnectTimeout) {
        builder = builder.connect_timeout(timeout);
    }
    for (host, addrs) in &overrides {
        builder = builder.resolve_to_addrs(host, addrs);
    }
    let allow_http = options
        .get_config_value(&ClientConfigKey::AllowHttp)
        .is_some_and(|value| value == "true");
    builder
        .https_only(!allow_http)
        .build()
        .map(Some)
        .map_err(|err| object_store::Error::Generic {
            store: "backup",
            source: Box::new(err),
        })
}

#[derive(Debug)]
pub(super) struct LimitedService {
    inner: HttpClient,
}

/// Written out as the `async_trait` macro would expand it (vouch does not
/// depend on that macro).
impl HttpService for LimitedService {
    fn call<'a, 'b>(
        &'a self,
        request: HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, HttpError>> + Send + 'b>,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let response = self.inner.execute(request).await?;
            let (parts, body) = response.into_parts();
            let limited = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES).map_err(
                |err: Box<dyn std::error::Error + Send + Sync>| match err.downcast::<HttpError>() {
                    Ok(inner) => *inner,
                    Err(_) => {
                        HttpError::new(HttpErrorKind::Decode, AnswerTooLarge(MAX_RESPONSE_BYTES))
                    }
                },
            );
            Ok(HttpResponse::from_parts(
                parts,
                HttpResponseBody::new(limited),
            ))
        })
    }
}
