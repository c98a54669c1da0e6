//! The HTTP side: paths, query parameters, Accept negotiation, Status
//! errors, chunked watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use bytes::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::rbac::{self, Attributes};
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{Change, ChangeKind, KubeRequest, Note, ObjectKey, ResourceType, State};
use super::Inner;

/// Accepts connections until the task is aborted; aborting drops every
/// open connection with it (the JoinSet aborts its tasks on drop).
pub(crate) async fn serve(
    listener: TcpListener,
    inner: Arc<Inner>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let inner = inner.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        None => serve_connection(stream, inner).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(stream, inner).await;
                            }
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection<I>(io: I, inner: Arc<Inner>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let inner = inner.clone();
        async move { Ok::<_, Infallible>(handle(inner, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(Body::from(value.to_string()))
        .expect("a response")
}

/// A `Status` object as the API server writes it for a failure.
pub(crate) fn status_object(code: u16, reason: &str, message: &str, details: Value) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if !details.is_null() {
        status["details"] = details;
    }
    status
}

fn failure(code: u16, reason: &str, message: &str, details: Value) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).expect("a status code"),
        &status_object(code, reason, message, details),
    )
}

/// The failures a real API server gives under load or trouble.
fn injected_failure(code: u16) -> Response<Body> {
    match code {
        429 => {
            let mut response = failure(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                json!({"retryAfterSeconds": 1}),
            );
            response
                .headers_mut()
                .insert("Retry-After", hyper::header::HeaderValue::from_static("1"));
            response
        }
        500 => failure(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out",
            json!({"causes": [{"message": "etcdserver: request timed out"}]}),
        ),
        503 => failure(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            Value::Null,
        ),
        504 => failure(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
            json!({}),
        ),
        other => failure(other, "Unknown", "the fake was told to fail this request", Value::Null),
    }
}

fn not_found_path() -> Response<Body> {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
        json!({}),
    )
}

fn resource_details(resource_type: &ResourceType, name: Option<&str>) -> Value {
    let mut details = json!({"kind": resource_type.plural});
    if let Some(name) = name {
        details["name"] = json!(name);
    }
    if !resource_type.group.is_empty() {
        details["group"] = json!(resource_type.group);
    }
    details
}

fn qualified(resource_type: &ResourceType) -> String {
    if resource_type.group.is_empty() {
        resource_type.plural.clone()
    } else {
        format!("{}.{}", resource_type.plural, resource_type.group)
    }
}

/// What the Accept header asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Representation {
    Full,
    Metadata,
}

fn representation(accept: &str) -> Representation {
    let metadata = accept.split(',').any(|choice| {
        let parameters: Vec<&str> = choice.split(';').map(str::trim).collect();
        parameters.contains(&"g=meta.k8s.io")
            && (parameters.contains(&"as=PartialObjectMetadata")
                || parameters.contains(&"as=PartialObjectMetadataList"))
    });
    if metadata {
        Representation::Metadata
    } else {
        Representation::Full
    }
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"].clone(),
    })
}

/// A resource request, after the path is understood.
struct Target {
    resource_type: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route {
    Discovery(Value),
    Resource(Target),
    NotFound,
}

fn api_resource_list(group_version: &str, types: &[&ResourceType]) -> Value {
    let mut resources = Vec::new();
    for t in types {
        resources.push(json!({
            "name": t.plural,
            "singularName": t.kind.to_lowercase(),
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": t.short_names,
        }));
        if t.status {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

/// Whether the Accept header asks for aggregated discovery (kube-client's
/// `Discovery::run_aggregated`, kubectl): the real server answers `/api`
/// and `/apis` with an APIGroupDiscoveryList then.
fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|choice| {
        let parameters: Vec<&str> = choice.split(';').map(str::trim).collect();
        parameters.contains(&"g=apidiscovery.k8s.io")
            && parameters.contains(&"as=APIGroupDiscoveryList")
            && (parameters.contains(&"v=v2") || parameters.contains(&"v=v2beta1"))
    })
}

/// An APIGroupDiscoveryList (apidiscovery.k8s.io/v2) of the core group
/// (`core`) or of every named group.
fn aggregated_discovery(state: &State, core: bool) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in state.types.iter().filter(|t| t.group.is_empty() == core) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) => {
                if !versions.contains(&t.version) {
                    versions.push(t.version.clone())
                }
            }
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> = state
                        .types
                        .iter()
                        .filter(|t| t.group == *group && t.version == *version)
                        .map(|t| {
                            let response_kind =
                                json!({"group": t.group, "version": t.version, "kind": t.kind});
                            let mut resource = json!({
                                "resource": t.plural,
                                "responseKind": response_kind,
                                "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": t.kind.to_lowercase(),
                                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                            });
                            if !t.short_names.is_empty() {
                                resource["shortNames"] = json!(t.short_names);
                            }
                            if t.status {
                                resource["subresources"] = json!([{
                                    "subresource": "status",
                                    "responseKind": response_kind,
                                    "verbs": ["get", "patch", "update"],
                                }]);
                            }
                            resource
                        })
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut metadata = json!({"creationTimestamp": null});
            if !group.is_empty() {
                metadata["name"] = json!(group);
            }
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn route(state: &State, path: &str, server_address: &str, accept: &str) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if wants_aggregated(accept) {
        match segments.as_slice() {
            ["api"] => return Route::Discovery(aggregated_discovery(state, true)),
            ["apis"] => return Route::Discovery(aggregated_discovery(state, false)),
            _ => {}
        }
    }
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => {
            return Route::Discovery(json!({
                "major": "1",
                "minor": "33",
                "gitVersion": "v1.33.0-vouch-fake",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.24.0",
                "compiler": "gc",
                "platform": "linux/amd64"
            }))
        }
        ["api"] => {
            return Route::Discovery(json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
                ]
            }))
        }
        ["apis"] => {
            let mut groups: Vec<(String, Vec<String>)> = Vec::new();
            for t in state.types.iter().filter(|t| !t.group.is_empty()) {
                match groups.iter_mut().find(|(g, _)| *g == t.group) {
                    Some((_, versions)) => {
                        if !versions.contains(&t.version) {
                            versions.push(t.version.clone())
                        }
                    }
                    None => groups.push((t.group.clone(), vec![t.version.clone()])),
                }
            }
            let groups: Vec<Value> = groups.iter().map(|(g, v)| api_group(g, v)).collect();
            return Route::Discovery(json!({
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": groups,
            }));
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group] => {
            let mut versions: Vec<String> = Vec::new();
            for t in state.types.iter().filter(|t| t.group == *group) {
                if !versions.contains(&t.version) {
                    versions.push(t.version.clone());
                }
            }
            if versions.is_empty() {
                return Route::NotFound;
            }
            let mut document = api_group(group, &versions);
            document["kind"] = json!("APIGroup");
            document["apiVersion"] = json!("v1");
            return Route::Discovery(document);
        }
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Route::NotFound,
    };
    if rest.is_empty() {
        let types: Vec<&ResourceType> = state
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect();
        if types.is_empty() {
            return Route::NotFound;
        }
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        return Route::Discovery(api_resource_list(&group_version, &types));
    }
    // namespaces/{ns}/{plural}... is a namespaced request unless it is the
    // namespace object itself (namespaces/{ns} or namespaces/{ns}/status).
    let (namespace, rest) = match rest {
        ["namespaces", _, "status"] if group.is_empty() => (None, rest),
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return Route::NotFound,
    };
    let Some(resource_type) = state.find_type(group, version, plural) else {
        return Route::NotFound;
    };
    if namespace.is_some() && !resource_type.namespaced {
        return Route::NotFound;
    }
    if namespace.is_none() && resource_type.namespaced && name.is_some() {
        return Route::NotFound;
    }
    if let Some(sub) = &subresource {
        if !(sub == "status" && resource_type.status) {
            return Route::NotFound;
        }
    }
    Route::Resource(Target {
        resource_type: resource_type.clone(),
        namespace,
        name,
        subresource,
    })
}

pub(crate) async fn handle(
    inner: Arc<Inner>,
    request: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let mut held = inner.held.subscribe();
    let _ = held.wait_for(|held| !*held).await;
    let delay = inner.state.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let accept = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let representation = representation(&accept);
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mut record = KubeRequest {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        verb: "discovery".to_string(),
        group: String::new(),
        plural: String::new(),
        namespace: None,
        name: None,
        metadata_only: representation == Representation::Metadata,
        status: 0,
    };
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", inner.token));
    let response = if !authorized {
        record.verb = method.to_lowercase();
        failure(401, "Unauthorized", "Unauthorized", Value::Null)
    } else {
        answer(
            &inner,
            &method,
            &path,
            &accept,
            &params,
            representation,
            &mut record,
        )
    };
    record.status = response.status().as_u16();
    inner.state.lock().unwrap().requests.push(record);
    response
}

fn answer(
    inner: &Arc<Inner>,
    method: &str,
    path: &str,
    accept: &str,
    params: &HashMap<String, String>,
    representation: Representation,
    record: &mut KubeRequest,
) -> Response<Body> {
    let mut state = inner.state.lock().unwrap();
    let target = match route(&state, path, &inner.server_address, accept) {
        Route::Discovery(document) => {
            record.verb = if method == "GET" {
                "discovery".to_string()
            } else {
                method.to_lowercase()
            };
            if method != "GET" {
                return failure(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                    json!({}),
                );
            }
            return json_response(StatusCode::OK, &document);
        }
        Route::NotFound => {
            record.verb = method.to_lowercase();
            return not_found_path();
        }
        Route::Resource(target) => target,
    };
    let watch = matches!(
        params.get("watch").map(String::as_str),
        Some("true") | Some("1")
    );
    let verb = match (method, &target.name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        (other, _) => {
            record.verb = other.to_lowercase();
            ""
        }
    };
    if !verb.is_empty() {
        record.verb = verb.to_string();
    }
    record.group = target.resource_type.group.clone();
    record.plural = target.resource_type.plural.clone();
    record.namespace = target.namespace.clone();
    record.name = target.name.clone();
    if verb.is_empty() {
        return failure(
            405,
            "MethodNotAllowed",
            "the fake Kubernetes API serves reads only (get, list, watch)",
            json!({}),
        );
    }

    let injected = state
        .failures
        .get(&target.resource_type.plural)
        .or_else(|| state.failures.get("*"))
        .copied();
    if let Some(code) = injected {
        return injected_failure(code);
    }

    let labels = match LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))
    {
        Ok(selector) => selector,
        Err(message) => return failure(400, "BadRequest", &message, Value::Null),
    };
    let fields = match FieldSelector::parse(
        params.get("fieldSelector").map_or("", String::as_str),
        &target.resource_type.group,
        &target.resource_type.plural,
    ) {
        Ok(selector) => selector,
        Err(message) => return failure(400, "BadRequest", &message, Value::Null),
    };

    if let Some(rules) = &state.rules {
        let resource = match &target.subresource {
            Some(sub) => format!("{}/{sub}", target.resource_type.plural),
            None => target.resource_type.plural.clone(),
        };
        // The namespace object is authorized in its own namespace.
        let namespace = if target.resource_type.plural == "namespaces"
            && target.resource_type.group.is_empty()
        {
            target.name.as_deref()
        } else {
            target.namespace.as_deref()
        };
        let attributes = Attributes {
            verb,
            group: &target.resource_type.group,
            resource,
            namespace,
            name: target.name.as_deref().or(fields.exact_name()),
        };
        if !rbac::allowed(rules, &attributes) {
            let message =
                rbac::forbidden_message(&state.user, &attributes, &target.resource_type.plural);
            return failure(
                403,
                "Forbidden",
                &message,
                resource_details(&target.resource_type, attributes.name),
            );
        }
    }

    match verb {
        "get" => get(&state, &target, representation),
        "list" => list(&state, &target, params, &labels, &fields, representation),
        _ => {
            let spec = WatchSpec {
                resource_type: target.resource_type.clone(),
                namespace: target.namespace.clone(),
                labels,
                fields,
                representation,
            };
            watch_response(inner, &mut state, spec, params)
        }
    }
}

fn get(state: &State, target: &Target, representation: Representation) -> Response<Body> {
    let name = target.name.clone().unwrap_or_default();
    let key: ObjectKey = (target.namespace.clone().unwrap_or_default(), name.clone());
    match state.get(&target.resource_type.key(), &key) {
        Some(object) => {
            let body = match representation {
                Representation::Metadata => partial_metadata(object),
                Representation::Full => object.clone(),
            };
            json_response(StatusCode::OK, &body)
        }
        None => failure(
            404,
            "NotFound",
            &format!("{} {name:?} not found", qualified(&target.resource_type)),
            resource_details(&target.resource_type, Some(&name)),
        ),
    }
}

/// Continue tokens carry the list's resourceVersion and the last key
/// served, like the real server's (base64 of a small JSON document).
fn encode_continue(rv: u64, last: &ObjectKey) -> String {
    let start = format!("{}/{}\u{0}", last.0, last.1);
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Option<(u64, ObjectKey)> {
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .ok()?;
    let document: Value = serde_json::from_slice(&bytes).ok()?;
    let rv = document["rv"].as_u64()?;
    let start = document["start"].as_str()?.strip_suffix('\u{0}')?;
    let (namespace, name) = start.split_once('/')?;
    Some((rv, (namespace.to_string(), name.to_string())))
}

fn list_item(
    resource_type: &ResourceType,
    object: &Value,
    representation: Representation,
) -> Value {
    match representation {
        Representation::Metadata => partial_metadata(object),
        Representation::Full => {
            let mut item = object.clone();
            if resource_type.builtin {
                if let Some(map) = item.as_object_mut() {
                    map.remove("apiVersion");
                    map.remove("kind");
                }
            }
            item
        }
    }
}

fn list(
    state: &State,
    target: &Target,
    params: &HashMap<String, String>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    representation: Representation,
) -> Response<Body> {
    let type_key = target.resource_type.key();
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let (list_rv, after) = match params.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let Some((rv, last)) = decode_continue(token) else {
                return failure(400, "BadRequest", "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)", Value::Null);
            };
            if rv < state.compacted {
                return failure(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    Value::Null,
                );
            }
            (rv, Some(last))
        }
        None => {
            let exact = params.get("resourceVersionMatch").map(String::as_str) == Some("Exact");
            match params
                .get("resourceVersion")
                .and_then(|rv| rv.parse::<u64>().ok())
            {
                Some(rv) if exact && rv < state.compacted => {
                    return failure(
                        410,
                        "Expired",
                        &format!("too old resource version: {rv} ({})", state.compacted),
                        Value::Null,
                    );
                }
                Some(rv) if exact => (rv, None),
                _ => (state.rv, None),
            }
        }
    };
    let objects = if list_rv == state.rv {
        state.objects.get(&type_key).cloned().unwrap_or_default()
    } else {
        state.snapshot(&type_key, list_rv)
    };
    let matching: Vec<(&ObjectKey, &Value)> = objects
        .iter()
        .filter(|(key, object)| {
            target.namespace.as_ref().is_none_or(|ns| key.0 == *ns)
                && after.as_ref().is_none_or(|last| *key > last)
                && labels.matches(object)
                && fields.matches(object)
        })
        .collect();
    let page_len = limit.map_or(matching.len(), |l| l.min(matching.len()));
    let items: Vec<Value> = matching[..page_len]
        .iter()
        .map(|(_, object)| list_item(&target.resource_type, object, representation))
        .collect();
    let remaining = matching.len() - page_len;
    let last_key = page_len.checked_sub(1).map(|i| matching[i].0.clone());
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0 {
        if let Some(last) = &last_key {
            metadata["continue"] = json!(encode_continue(list_rv, last));
            if labels.is_empty() && fields.is_empty() {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
    }
    let (kind, api_version) = match representation {
        Representation::Metadata => (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        ),
        Representation::Full => (
            format!("{}List", target.resource_type.kind),
            target.resource_type.api_version(),
        ),
    };
    json_response(
        StatusCode::OK,
        &json!({
            "kind": kind,
            "apiVersion": api_version,
            "metadata": metadata,
            "items": items,
        }),
    )
}

/// Which changes one watch reports, and how.
struct WatchSpec {
    resource_type: ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    representation: Representation,
}

impl WatchSpec {
    fn selects(&self, key: &ObjectKey, object: &Value) -> bool {
        self.namespace.as_ref().is_none_or(|ns| key.0 == *ns)
            && self.labels.matches(object)
            && self.fields.matches(object)
    }

    fn shape(&self, object: &Value) -> Value {
        match self.representation {
            Representation::Metadata => partial_metadata(object),
            Representation::Full => object.clone(),
        }
    }

    fn event(&self, kind: &str, object: &Value) -> Bytes {
        let mut line = json!({"type": kind, "object": self.shape(object)}).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    /// The event this watch sees for a change, as the real watch cache
    /// filters: an object that starts matching is ADDED, one that stops
    /// matching is DELETED.
    fn translate(&self, change: &Change) -> Option<Bytes> {
        if change.type_key != self.resource_type.key() {
            return None;
        }
        let now = change.kind != ChangeKind::Deleted && self.selects(&change.key, &change.object);
        let before = change
            .previous
            .as_ref()
            .is_some_and(|previous| self.selects(&change.key, previous));
        let kind = match (change.kind, before, now) {
            (ChangeKind::Deleted, true, _) => "DELETED",
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            _ => return None,
        };
        Some(self.event(kind, &change.object))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let (kind, api_version) = match self.representation {
            Representation::Metadata => (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            ),
            Representation::Full => (
                self.resource_type.kind.clone(),
                self.resource_type.api_version(),
            ),
        };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let mut line = json!({
            "type": "BOOKMARK",
            "object": {"kind": kind, "apiVersion": api_version, "metadata": metadata}
        })
        .to_string();
        line.push('\n');
        Bytes::from(line)
    }
}

fn stream_response(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(Body::from_stream(stream))
        .expect("a response")
}

fn watch_response(
    inner: &Arc<Inner>,
    state: &mut State,
    spec: WatchSpec,
    params: &HashMap<String, String>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let bookmarks = params.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let send_initial = params.get("sendInitialEvents").map(String::as_str) == Some("true");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let requested = params
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or_default();
    let mut initial: Vec<Bytes> = Vec::new();
    let type_key = spec.resource_type.key();
    let current_objects = |state: &State| -> Vec<Bytes> {
        state
            .objects
            .get(&type_key)
            .map(|objects| {
                objects
                    .iter()
                    .filter(|(key, object)| spec.selects(key, object))
                    .map(|(_, object)| spec.event("ADDED", object))
                    .collect()
            })
            .unwrap_or_default()
    };
    if send_initial {
        initial = current_objects(state);
        initial.push(spec.bookmark(state.rv, true));
    } else if requested.is_empty() || requested == "0" {
        initial = current_objects(state);
    } else {
        let Ok(from) = requested.parse::<u64>() else {
            return failure(
                400,
                "BadRequest",
                &format!("invalid resource version: {requested:?}"),
                Value::Null,
            );
        };
        if from < state.compacted {
            let status = status_object(
                410,
                "Expired",
                &format!("too old resource version: {from} ({})", state.compacted),
                Value::Null,
            );
            let mut line = json!({"type": "ERROR", "object": status}).to_string();
            line.push('\n');
            tx.try_send(Ok(Bytes::from(line)))
                .expect("room for one event");
            return stream_response(rx);
        }
        for change in state.history.iter().filter(|c| c.rv > from) {
            if let Some(event) = spec.translate(change) {
                initial.push(event);
            }
        }
    }
    // Subscribed under the state lock: no change can fall between the
    // events collected above and those the subscription delivers.
    let mut notes = inner.notes.subscribe();
    let mut drops = inner.drops.subscribe();
    let mut last_seen = state.rv;
    let bookmark_interval = state.bookmark_interval;
    let open = inner.clone();
    open.open_watches.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let _count = OpenWatch(open);
        for event in initial {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + bookmark_interval,
            bookmark_interval,
        );
        loop {
            let line = tokio::select! {
                biased;
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = drops.changed() => {
                    let _ = tx.send(Err(std::io::Error::other("watch connection dropped by the test"))).await;
                    return;
                }
                _ = ticks.tick() => {
                    if !bookmarks { continue }
                    spec.bookmark(last_seen, false)
                }
                note = notes.recv() => match note {
                    Ok(Note::Change(change)) => {
                        if change.rv <= last_seen { continue }
                        last_seen = change.rv;
                        match spec.translate(&change) {
                            Some(line) => line,
                            None => continue,
                        }
                    }
                    Ok(Note::Bookmark) => {
                        if !bookmarks { continue }
                        spec.bookmark(last_seen, false)
                    }
                    Err(_) => {
                        // Too slow a reader: the real watch cache closes it.
                        let _ = tx.send(Err(std::io::Error::other("watcher fell behind"))).await;
                        return;
                    }
                }
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    stream_response(rx)
}

/// Counts a watch as open while its task runs.
struct OpenWatch(Arc<Inner>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}
