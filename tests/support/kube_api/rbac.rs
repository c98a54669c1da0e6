//! RBAC as the API server's authorizer applies it to read requests: rules of
//! verbs × API groups × resources (× resource names), granted cluster-wide
//! (ClusterRoleBinding) or in one namespace (RoleBinding).

use serde::Deserialize;
use serde_json::Value;

/// One granted rule, as in a Role or ClusterRole, plus where it applies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub verbs: Vec<String>,
    /// `""` is the core group; `"*"` any group.
    pub api_groups: Vec<String>,
    /// Plurals, `plural/subresource`, or `"*"`.
    pub resources: Vec<String>,
    /// Empty: any name.
    pub resource_names: Vec<String>,
    /// `None`: every namespace and the cluster scope (a ClusterRoleBinding);
    /// `Some(ns)`: only requests in that namespace (a RoleBinding).
    pub namespace: Option<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Rule {
    /// A rule granted cluster-wide.
    pub fn new(verbs: &[&str], api_groups: &[&str], resources: &[&str]) -> Rule {
        Rule {
            verbs: strings(verbs),
            api_groups: strings(api_groups),
            resources: strings(resources),
            resource_names: Vec::new(),
            namespace: None,
        }
    }

    /// The same rule granted only in `namespace`.
    pub fn in_namespace(mut self, namespace: &str) -> Rule {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// The same rule restricted to objects with these names.
    pub fn names(mut self, names: &[&str]) -> Rule {
        self.resource_names = strings(names);
        self
    }

    fn allows(&self, request: &Attributes) -> bool {
        let any_or = |list: &[String], wanted: &str| list.iter().any(|x| x == "*" || x == wanted);
        if !any_or(&self.verbs, request.verb) || !any_or(&self.api_groups, request.group) {
            return false;
        }
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == request.resource
                || (request.resource.contains('/')
                    && r.starts_with("*/")
                    && request.resource.ends_with(&r[1..]))
        });
        if !resource_ok {
            return false;
        }
        if let Some(namespace) = &self.namespace {
            if request.namespace != Some(namespace.as_str()) {
                return false;
            }
        }
        if self.resource_names.is_empty() {
            return true;
        }
        // A list or watch names one object only through metadata.name=.
        request
            .name
            .is_some_and(|name| self.resource_names.iter().any(|n| n == name))
    }
}

/// What the authorizer decides on.
pub(crate) struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    /// `plural` or `plural/subresource`.
    pub resource: String,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

pub(crate) fn allowed(rules: &[Rule], request: &Attributes) -> bool {
    rules.iter().any(|rule| rule.allows(request))
}

/// The real Forbidden message: `pods is forbidden: User "u" cannot list
/// resource "pods" in API group "" in the namespace "prod"`.
pub(crate) fn forbidden_message(user: &str, request: &Attributes, bare_resource: &str) -> String {
    let qualified = if request.group.is_empty() {
        bare_resource.to_string()
    } else {
        format!("{bare_resource}.{}", request.group)
    };
    let subject = match request.name {
        Some(name) => format!("{qualified} {name:?}"),
        _ => qualified,
    };
    let scope = match request.namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_string(),
    };
    format!(
        "{subject} is forbidden: User {user:?} cannot {} resource {:?} in API group {:?} {scope}",
        request.verb, request.resource, request.group
    )
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    rules: Vec<Value>,
    #[serde(default, rename = "roleRef")]
    role_ref: Value,
    #[serde(default)]
    subjects: Vec<Value>,
}

fn documents(yaml: &str) -> Vec<Manifest> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = serde_yaml_ng::Value::deserialize(document).expect("parse a YAML document");
        if value.is_null() {
            continue;
        }
        let json: Value = serde_json::to_value(value).expect("YAML as JSON");
        if json.get("kind").and_then(Value::as_str) == Some("List") {
            for item in json["items"].as_array().cloned().unwrap_or_default() {
                out.push(serde_json::from_value(item).expect("a manifest in a List"));
            }
        } else {
            out.push(serde_json::from_value(json).expect("a manifest"));
        }
    }
    out
}

fn text_list(value: &Value, key: &str) -> Vec<String> {
    value[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn role_rules(manifest: &Manifest, namespace: Option<&str>) -> Vec<Rule> {
    manifest
        .rules
        .iter()
        .filter(|rule| rule.get("nonResourceURLs").is_none())
        .map(|rule| Rule {
            verbs: text_list(rule, "verbs"),
            api_groups: text_list(rule, "apiGroups"),
            resources: text_list(rule, "resources"),
            resource_names: text_list(rule, "resourceNames"),
            namespace: namespace.map(str::to_string),
        })
        .collect()
}

fn namespace_of(manifest: &Manifest, default_namespace: &str) -> String {
    manifest.metadata["namespace"]
        .as_str()
        .unwrap_or(default_namespace)
        .to_string()
}

/// Every rule of every Role (in its namespace, or `default_namespace` when
/// the manifest names none, as kustomize would set it) and ClusterRole
/// (cluster-wide) in a multi-document YAML, ignoring bindings.
pub fn rules_of_roles(yaml: &str, default_namespace: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    for manifest in documents(yaml) {
        match manifest.kind.as_str() {
            "Role" => {
                let ns = namespace_of(&manifest, default_namespace);
                rules.extend(role_rules(&manifest, Some(&ns)));
            }
            "ClusterRole" => rules.extend(role_rules(&manifest, None)),
            _ => {}
        }
    }
    rules
}

/// The rules a multi-document YAML of Roles, ClusterRoles, RoleBindings and
/// ClusterRoleBindings grants `user` (e.g.
/// `system:serviceaccount:vouch:vouch`), resolved as the RBAC authorizer
/// does: a RoleBinding grants its role's rules (a Role's or a ClusterRole's)
/// in the binding's namespace, a ClusterRoleBinding a ClusterRole's
/// everywhere. Objects without a namespace get `default_namespace`.
pub fn rules_bound_to(yaml: &str, default_namespace: &str, user: &str) -> Vec<Rule> {
    let manifests = documents(yaml);
    let find_role = |kind: &str, name: &str, namespace: &str| {
        manifests.iter().find(|m| {
            m.kind == kind
                && m.metadata["name"].as_str() == Some(name)
                && (kind == "ClusterRole" || namespace_of(m, default_namespace) == namespace)
        })
    };
    let mut rules = Vec::new();
    for binding in &manifests {
        let cluster_wide = match binding.kind.as_str() {
            "RoleBinding" => false,
            "ClusterRoleBinding" => true,
            _ => continue,
        };
        let binding_ns = namespace_of(binding, default_namespace);
        let bound = binding
            .subjects
            .iter()
            .any(|subject| subject_matches(subject, &binding_ns, user));
        if !bound {
            continue;
        }
        let role_kind = binding.role_ref["kind"].as_str().unwrap_or_default();
        let role_name = binding.role_ref["name"].as_str().unwrap_or_default();
        if cluster_wide && role_kind != "ClusterRole" {
            continue;
        }
        let Some(role) = find_role(role_kind, role_name, &binding_ns) else {
            continue;
        };
        let scope = (!cluster_wide).then_some(binding_ns.as_str());
        rules.extend(role_rules(role, scope));
    }
    rules
}

fn subject_matches(subject: &Value, binding_ns: &str, user: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    let service_account = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    match subject["kind"].as_str().unwrap_or_default() {
        "ServiceAccount" => {
            let ns = subject["namespace"].as_str().unwrap_or(binding_ns);
            user == format!("system:serviceaccount:{ns}:{name}")
        }
        "User" => user == name,
        "Group" => match service_account {
            Some((ns, _)) => {
                name == "system:authenticated"
                    || name == "system:serviceaccounts"
                    || name == format!("system:serviceaccounts:{ns}")
            }
            None => name == "system:authenticated",
        },
        _ => false,
    }
}
