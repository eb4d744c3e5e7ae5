//! `ticketlog serve` as a client sees it: the real binary on 127.0.0.1 with
//! port 0, a real HTTP client (ureq), every reply checked against
//! `docs/openapi.json`, the data directory compared byte for byte around
//! every rejected request, restarts, SIGKILL and SIGTERM, and the CLI with
//! `--server`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ticketlog::{ListQuery, Options, Status, Store, TicketId};

/// The longest any test waits for the server to do something it must do
/// (a bound that turns a hang into a failure, not a synchronisation delay).
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------- the server

/// A running `ticketlog serve`, killed if the test ends without stopping it.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) url: String,
    stderr: Option<std::process::ChildStderr>,
}

impl Server {
    /// Starts `ticketlog --dir DIR serve --listen 127.0.0.1:0 EXTRA…` and
    /// reads the address it bound from its first line of stdout.
    pub(crate) fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticketlog"))
            .env_remove("TICKETLOG_DIR")
            .env_remove("TICKETLOG_SERVER")
            .arg("--dir")
            .arg(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ticketlog serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read serve's stdout");
        let stderr = child.stderr.take();
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let mut err = String::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_string(&mut err);
            }
            let _ = child.kill();
            panic!("serve did not print its address: {line:?}, stderr: {err}");
        };
        Server {
            url: url.to_owned(),
            child: Some(child),
            stderr,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` (e.g. "TERM", "KILL") and waits for the process to end;
    /// returns its status and its stderr.
    pub(crate) fn stop(mut self, signal: &str) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
        let mut child = self.child.take().unwrap();
        let status = child.wait().expect("wait for serve");
        let mut err = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        (status, err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------- the client

/// One HTTP reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {self:#?}"))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub(crate) fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error reply: {self:#?}"))
            .to_owned()
    }
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Sends one request; `Err` only for a transport failure.
pub(crate) fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Reply, ureq::Error> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut response = match body {
        Some(body) => agent.run(
            builder
                .header("Content-Type", "application/json")
                .body(body.to_owned())
                .unwrap(),
        )?,
        None => agent.run(builder.body(()).unwrap())?,
    };
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()?;
    Ok(Reply {
        status: response.status().as_u16(),
        headers,
        body,
    })
}

/// A client of one server that checks every reply against the OpenAPI
/// document.
pub(crate) struct Http {
    agent: ureq::Agent,
    url: String,
    pub(crate) api: Value,
}

impl Http {
    pub(crate) fn new(server: &Server) -> Http {
        Http {
            agent: agent(),
            url: server.url.clone(),
            api: openapi(),
        }
    }

    /// Sends a request to `path` (whose OpenAPI template is `template`) and
    /// checks the reply against the document.
    pub(crate) fn call(
        &self,
        method: &str,
        template: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let reply = send(
            &self.agent,
            method,
            &format!("{}{path}", self.url),
            body,
            headers,
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if let Err(why) = check_reply(&self.api, method, template, &reply) {
            panic!(
                "{method} {path}: the reply does not match docs/openapi.json: {why}\n{reply:#?}"
            );
        }
        reply
    }

    pub(crate) fn post(&self, path: &str, body: &str) -> Reply {
        let template = if path == "/tickets/batch" {
            "/tickets/batch"
        } else {
            "/tickets"
        };
        self.call("POST", template, path, Some(body), &[])
    }

    pub(crate) fn get(&self, template: &str, path: &str) -> Reply {
        self.call("GET", template, path, None, &[])
    }
}

// ------------------------------------------------------- the OpenAPI check

pub(crate) fn openapi() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
        .expect("read docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

/// Checks that the document has `status` for `method template` and that the
/// reply's body matches its schema (JSON replies only).
pub(crate) fn check_reply(
    api: &Value,
    method: &str,
    template: &str,
    reply: &Reply,
) -> Result<(), String> {
    let operation = &api["paths"][template][method.to_ascii_lowercase()];
    if !operation.is_object() {
        return Err(format!("{method} {template} is not in the document"));
    }
    let mut response = &operation["responses"][reply.status.to_string()];
    if !response.is_object() {
        return Err(format!("status {} is not documented", reply.status));
    }
    if let Some(reference) = response["$ref"].as_str() {
        response = resolve(api, reference)?;
    }
    let content = &response["content"];
    let Some((media_type, media)) = content.as_object().and_then(|c| c.iter().next()) else {
        return Ok(());
    };
    let content_type = reply.header("content-type").unwrap_or("");
    if !content_type.starts_with(media_type.as_str()) {
        return Err(format!(
            "content-type {content_type:?}, documented {media_type}"
        ));
    }
    if media_type == "application/json" {
        let body: Value = serde_json::from_str(&reply.body).map_err(|e| e.to_string())?;
        check_schema(api, &media["schema"], &body, "$")?;
    }
    Ok(())
}

fn resolve<'a>(api: &'a Value, reference: &str) -> Result<&'a Value, String> {
    let pointer = reference
        .strip_prefix('#')
        .ok_or_else(|| format!("only local references: {reference}"))?;
    api.pointer(pointer)
        .ok_or_else(|| format!("dangling reference {reference}"))
}

/// A JSON Schema check of the subset the document uses: `$ref`, `type` (one
/// or a list), `enum`, `const`, `properties`, `required`,
/// `additionalProperties: false`, `items`, `minItems`/`maxItems`,
/// `minimum`/`maximum`, `minLength`/`maxLength`, `oneOf`, and
/// `format: date-time` (RFC 3339 as the server writes it). A keyword it does
/// not know is an error, so the document cannot outgrow the check unseen.
pub(crate) fn check_schema(
    api: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
) -> Result<(), String> {
    let schema = match schema["$ref"].as_str() {
        Some(reference) => resolve(api, reference)?,
        None => schema,
    };
    let object = schema
        .as_object()
        .ok_or_else(|| format!("{at}: schema is not an object"))?;
    for keyword in object.keys() {
        let known = [
            "type",
            "enum",
            "const",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "minItems",
            "maxItems",
            "minimum",
            "maximum",
            "minLength",
            "maxLength",
            "oneOf",
            "format",
            "description",
            "default",
            "pattern",
        ];
        if !known.contains(&keyword.as_str()) {
            return Err(format!(
                "{at}: the check does not know the keyword {keyword}"
            ));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: bad type keyword")),
        };
        let matches = |name: &str| match name {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.iter().any(|name| matches(name)) {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(format!("{at}: {value} is not {constant}"));
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            return Err(format!("{at}: {number} is under the minimum {minimum}"));
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            return Err(format!("{at}: {number} is over the maximum {maximum}"));
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.len() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            return Err(format!("{at}: {text:?} is shorter than {min}"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            return Err(format!("{at}: {text:?} is longer than {max}"));
        }
        if schema.get("format").and_then(Value::as_str) == Some("date-time")
            && !is_rfc3339_millis(text)
        {
            return Err(format!("{at}: {text:?} is not an RFC 3339 date-time"));
        }
    }
    if let Some(fields) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(name) {
                return Err(format!("{at}: the required field {name} is missing"));
            }
        }
        for (name, field) in fields {
            match properties.and_then(|p| p.get(name)) {
                Some(field_schema) => {
                    check_schema(api, field_schema, field, &format!("{at}.{name}"))?;
                }
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: the field {name} is not in the schema"));
                }
                None => {}
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            return Err(format!("{at}: fewer than {min} items"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            return Err(format!("{at}: more than {max} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check_schema(api, item_schema, item, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(choices) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = choices
            .iter()
            .filter(|choice| check_schema(api, choice, value, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!(
                "{at}: {value} matches {matching} of the oneOf choices, not exactly one"
            ));
        }
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as the server writes every timestamp.
fn is_rfc3339_millis(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 24
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'.',
            23 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

#[test]
fn the_openapi_check_refuses_replies_that_break_the_document() {
    let api = openapi();
    let reply = |status: u16, body: Value| Reply {
        status,
        headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
        body: body.to_string(),
    };
    let ticket = json!({
        "id": 1, "title": "t", "description": "d", "status": "todo", "version": 1,
        "created_at": "2026-01-02T03:04:05.678Z", "updated_at": "2026-01-02T03:04:05.678Z"
    });
    assert_eq!(
        check_reply(&api, "GET", "/tickets/{id}", &reply(200, ticket.clone())),
        Ok(())
    );
    let mut wrong_status = ticket.clone();
    wrong_status["status"] = json!("ToDo");
    let mut extra_field = ticket.clone();
    extra_field["extra"] = json!(1);
    let mut numeric_time = ticket.clone();
    numeric_time["created_at"] = json!(1_767_323_045_678_u64);
    let mut missing = ticket.clone();
    missing.as_object_mut().unwrap().remove("version");
    for broken in [wrong_status, extra_field, numeric_time, missing] {
        assert!(
            check_reply(&api, "GET", "/tickets/{id}", &reply(200, broken.clone())).is_err(),
            "{broken}"
        );
    }
    assert!(check_reply(&api, "GET", "/tickets/{id}", &reply(418, ticket)).is_err());
    let event = json!({"type": "created", "lsn": 1, "ticket_id": 1, "version": 1,
        "at": "2026-01-02T03:04:05.678Z", "title": "t", "description": "d"});
    let history = json!({"ticket_id": 1, "first_lsn": 1, "complete": true, "events": [event]});
    assert_eq!(
        check_reply(
            &api,
            "GET",
            "/tickets/{id}/history",
            &reply(200, history.clone())
        ),
        Ok(())
    );
    let mut untagged = history;
    untagged["events"][0]["type"] = json!("made");
    assert!(check_reply(&api, "GET", "/tickets/{id}/history", &reply(200, untagged)).is_err());
}

// ------------------------------------------------------------- the files

/// Every file under `dir` (but the lock file) with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read the data directory") {
        let path = entry.unwrap().path();
        if path.is_file() {
            found.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    found
}

pub(crate) fn reopen(dir: &Path) -> Store {
    Store::open(dir, Options::default()).expect("reopen the store")
}

// ------------------------------------------------------------- the tests

/// (method, OpenAPI path, path, body, headers) of a request.
type Request<'a> = (
    &'a str,
    &'a str,
    String,
    Option<String>,
    Vec<(&'a str, &'a str)>,
);
/// A request the server must refuse, with the status and error code.
type Rejection<'a> = (Request<'a>, u16, &'a str);

#[test]
fn every_endpoint_and_error_class_over_http_and_rejections_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);

    // POST /tickets
    let created = http.post(
        "/tickets",
        r#"{"title":"first","description":"the first ticket"}"#,
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.header("location"), Some("/tickets/1"));
    assert_eq!(created.header("etag"), Some("\"1\""));
    let first = created.json();
    assert_eq!(
        (&first["id"], &first["status"], &first["version"]),
        (&json!(1), &json!("todo"), &json!(1))
    );

    // POST /tickets/batch: consecutive ids, in order.
    let batch = http.post(
        "/tickets/batch",
        r#"{"tickets":[{"title":"b1","description":"d"},{"title":"b2","description":"d"},{"title":"b3","description":"d"}]}"#,
    );
    assert_eq!(batch.status, 201, "{batch:#?}");
    let ids: Vec<_> = batch.json()["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3, 4]);

    // GET /tickets/{id}
    let got = http.get("/tickets/{id}", "/tickets/1");
    assert_eq!((got.status, got.json()), (200, first.clone()));
    assert_eq!(got.header("etag"), Some("\"1\""));

    // PATCH with the right If-Match, then GET /tickets paged.
    let patched = http.call(
        "PATCH",
        "/tickets/{id}",
        "/tickets/1",
        Some(r#"{"status":"in-progress","title":"first, started"}"#),
        &[("If-Match", "\"1\"")],
    );
    assert_eq!(patched.status, 200, "{patched:#?}");
    assert_eq!(patched.header("etag"), Some("\"2\""));
    assert_eq!(patched.json()["status"], "in-progress");
    let page = http.get("/tickets", "/tickets?limit=2").json();
    assert_eq!(page["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_after"], 2);
    let page = http.get("/tickets", "/tickets?limit=2&after=2").json();
    assert_eq!(page["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_after"], Value::Null);
    let in_progress = http.get("/tickets", "/tickets?status=in-progress").json();
    assert_eq!(in_progress["tickets"][0]["id"], 1);
    assert_eq!(in_progress["tickets"].as_array().unwrap().len(), 1);

    // DELETE with If-Match, then history and stats.
    let deleted = http.call(
        "DELETE",
        "/tickets/{id}",
        "/tickets/4",
        None,
        &[("If-Match", "\"1\"")],
    );
    assert_eq!((deleted.status, &deleted.json()["id"]), (200, &json!(4)));
    let deleted = http.call("DELETE", "/tickets/{id}", "/tickets/3", None, &[]);
    assert_eq!(deleted.status, 200);
    let history = http
        .get("/tickets/{id}/history", "/tickets/4/history")
        .json();
    let kinds: Vec<_> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["created", "deleted"]);
    assert_eq!(history["complete"], true);
    let history = http
        .get("/tickets/{id}/history", "/tickets/1/history")
        .json();
    assert_eq!(history["events"][1]["status"], "in-progress");
    let stats = http.get("/stats", "/stats").json();
    assert_eq!(
        (&stats["tickets"], &stats["in_progress"], &stats["next_id"]),
        (&json!(2), &json!(1), &json!(5))
    );
    // Nothing was compacted: the log runs from LSN 1 to the last.
    assert_eq!(stats["last_lsn"], stats["records"], "{stats:#}");
    let health = http.get("/health", "/health");
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (200, json!("ok"))
    );
    let health = health.json();
    assert_eq!(
        (&health["durability"], &health["retention"]),
        (&json!("always"), &json!("keep-all"))
    );
    assert_eq!(health["recovery"]["torn_tail"], Value::Null);
    assert_eq!(health["recovery"]["snapshot"], Value::Null);
    assert_eq!(health["recovery"]["records_replayed"], 0);
    let served = http.get("/openapi.json", "/openapi.json");
    assert_eq!(served.json(), openapi());

    // Every rejected request: its status and code, and not a byte written.
    let too_large = format!(
        r#"{{"title":"t","description":"{}"}}"#,
        "x".repeat(70 << 10)
    );
    let long_title = json!({"title": "t".repeat(51), "description": "d"}).to_string();
    #[rustfmt::skip]
    let rejected: Vec<Rejection> = vec![
        (("POST", "/tickets", "/tickets".into(), Some("{not json".into()), vec![]), 400, "bad_request"),
        (("POST", "/tickets", "/tickets".into(), Some(r#"{"title":1,"description":"d"}"#.into()), vec![]), 400, "bad_request"),
        (("POST", "/tickets", "/tickets".into(), Some(r#"{"title":"t","description":"d","owner":"me"}"#.into()), vec![]), 400, "bad_request"),
        (("POST", "/tickets", "/tickets".into(), Some(r#"["t","d"]"#.into()), vec![]), 400, "bad_request"),
        (("POST", "/tickets", "/tickets".into(), Some(too_large), vec![]), 413, "payload_too_large"),
        (("POST", "/tickets", "/tickets".into(), Some(r#"{"title":"","description":"d"}"#.into()), vec![]), 422, "invalid"),
        (("POST", "/tickets", "/tickets".into(), Some(long_title), vec![]), 422, "invalid"),
        (("POST", "/tickets/batch", "/tickets/batch".into(), Some(r#"{"tickets":[{"title":"ok","description":"d"},{"title":"","description":"d"}]}"#.into()), vec![]), 422, "invalid"),
        (("POST", "/tickets/batch", "/tickets/batch".into(), Some(r#"{"tickets":[]}"#.into()), vec![]), 422, "invalid"),
        (("GET", "/tickets/{id}", "/tickets/99".into(), None, vec![]), 404, "not_found"),
        (("GET", "/tickets/{id}", "/tickets/abc".into(), None, vec![]), 400, "bad_request"),
        (("GET", "/tickets", "/tickets?limit=0".into(), None, vec![]), 400, "bad_request"),
        (("GET", "/tickets", "/tickets?limit=1001".into(), None, vec![]), 400, "bad_request"),
        (("GET", "/tickets", "/tickets?sort=id".into(), None, vec![]), 400, "bad_request"),
        (("GET", "/tickets", "/tickets?status=blocked".into(), None, vec![]), 422, "invalid"),
        (("PATCH", "/tickets/{id}", "/tickets/1".into(), Some(r#"{"status":"blocked"}"#.into()), vec![]), 422, "invalid"),
        (("PATCH", "/tickets/{id}", "/tickets/1".into(), Some("{}".into()), vec![]), 422, "invalid"),
        (("PATCH", "/tickets/{id}", "/tickets/1".into(), Some(r#"{"status":"done"}"#.into()), vec![("If-Match", "\"1\"")]), 412, "version_conflict"),
        (("PATCH", "/tickets/{id}", "/tickets/1".into(), Some(r#"{"status":"done"}"#.into()), vec![("If-Match", "2")]), 400, "bad_request"),
        (("PATCH", "/tickets/{id}", "/tickets/99".into(), Some(r#"{"status":"done"}"#.into()), vec![]), 404, "not_found"),
        (("PATCH", "/tickets/{id}", "/tickets/1".into(), Some(r#"{"status":5}"#.into()), vec![]), 400, "bad_request"),
        (("DELETE", "/tickets/{id}", "/tickets/1".into(), None, vec![("If-Match", "\"7\"")]), 412, "version_conflict"),
        (("DELETE", "/tickets/{id}", "/tickets/3".into(), None, vec![]), 404, "not_found"),
        (("GET", "/tickets/{id}/history", "/tickets/99/history".into(), None, vec![]), 404, "not_found"),
        (("GET", "/events", "/events?from=12".into(), None, vec![]), 400, "bad_request"),
        (("GET", "/events", "/events".into(), None, vec![("Last-Event-ID", "x.1")]), 400, "bad_request"),
    ];
    for ((method, template, path, body, headers), status, code) in rejected {
        let before = files(dir.path());
        let reply = http.call(method, template, &path, body.as_deref(), &headers);
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (status, code),
            "{method} {path}: {reply:#?}"
        );
        assert!(
            before == files(dir.path()),
            "{method} {path} was rejected but changed the data directory"
        );
        if code == "version_conflict" {
            assert_eq!(reply.json()["error"]["current_version"], 2, "{reply:#?}");
        }
    }
    // Outside the document: no such route, no such method.
    let agent = agent();
    let no_route = send(&agent, "GET", &format!("{}/nope", server.url), None, &[]).unwrap();
    assert_eq!(
        (no_route.status, no_route.error_code()),
        (404, "not_found".into())
    );
    let no_method = send(
        &agent,
        "PUT",
        &format!("{}/tickets/1", server.url),
        None,
        &[],
    )
    .unwrap();
    assert_eq!(no_method.status, 405);

    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "serve exited with {status}: {stderr}");
    let store = reopen(dir.path());
    let tickets = store.client().list(ListQuery::default()).unwrap();
    assert_eq!(
        tickets.iter().map(|t| t.id.get()).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(tickets[0].status, Status::InProgress);
    store.close().unwrap();
}

#[test]
fn a_token_is_required_when_given_and_other_addresses_need_one() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "let-me-in\n").unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--token-file", token_file.to_str().unwrap()]);
    let http = Http::new(&server);
    for headers in [
        vec![],
        vec![("Authorization", "Bearer let-me-ix")],
        vec![("Authorization", "let-me-in")],
    ] {
        let reply = http.call("GET", "/stats", "/stats", None, &headers);
        assert_eq!(
            (reply.status, reply.error_code()),
            (401, "unauthorized".into())
        );
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    let reply = http.call(
        "POST",
        "/tickets",
        "/tickets",
        Some(r#"{"title":"t","description":"d"}"#),
        &[("Authorization", "Bearer let-me-in")],
    );
    assert_eq!(reply.status, 201);
    drop(server);

    // Refused before anything is bound or opened.
    let refused = Command::new(env!("CARGO_BIN_EXE_ticketlog"))
        .arg("--dir")
        .arg(dir.path().join("never"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("without a token"),
        "{refused:?}"
    );
    assert!(!dir.path().join("never").exists());
}

/// Clients, each with its own keep-alive connection, that create tickets
/// and update each one; returns every acknowledged (id, title, version).
fn create_and_update(
    url: &str,
    clients: usize,
    tickets_per_client: usize,
) -> Vec<(u64, String, u64)> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for client in 0..clients {
            let acked = Arc::clone(&acked);
            scope.spawn(move || {
                let agent = agent();
                for n in 0..tickets_per_client {
                    let title = format!("c{client}-{n}");
                    let body = json!({"title": title, "description": "d"}).to_string();
                    let reply =
                        send(&agent, "POST", &format!("{url}/tickets"), Some(&body), &[]).unwrap();
                    assert_eq!(reply.status, 201, "{reply:#?}");
                    let id = reply.json()["id"].as_u64().unwrap();
                    acked.lock().unwrap().push((id, title.clone(), 1));
                    let reply = send(
                        &agent,
                        "PATCH",
                        &format!("{url}/tickets/{id}"),
                        Some(r#"{"status":"done"}"#),
                        &[("If-Match", "\"1\"")],
                    )
                    .unwrap();
                    assert_eq!(reply.status, 200, "{reply:#?}");
                    acked.lock().unwrap().push((id, title, 2));
                }
            });
        }
    });
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

#[test]
fn sixty_four_concurrent_clients_get_unique_ids_and_every_2xx_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let acked = create_and_update(&server.url, 64, 8);
    let created: Vec<u64> = acked.iter().filter(|a| a.2 == 1).map(|a| a.0).collect();
    assert_eq!(created.len(), 64 * 8);
    assert_eq!(
        created.iter().collect::<HashSet<_>>().len(),
        created.len(),
        "an id was handed out twice"
    );
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");

    // A restarted server (the real binary again) has every acknowledged change.
    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);
    for (id, title, version) in acked.iter().filter(|a| a.2 == 2) {
        let ticket = http.get("/tickets/{id}", &format!("/tickets/{id}")).json();
        assert_eq!(
            (&ticket["title"], &ticket["version"], &ticket["status"]),
            (&json!(title), &json!(version), &json!("done"))
        );
    }
    let stats = http.get("/stats", "/stats").json();
    assert_eq!(stats["done"], 64 * 8);
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
}

/// What [`load_until_gone`] collects: acknowledged (id, title), every
/// status other than 201, and the client threads.
type Load = (
    Arc<Mutex<Vec<(u64, String)>>>,
    Arc<Mutex<Vec<u16>>>,
    Vec<std::thread::JoinHandle<()>>,
);

/// Clients creating tickets until the server goes away; each records what
/// was acknowledged with a 2xx and every other status it got.
fn load_until_gone(url: &str, clients: usize) -> Load {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let other_statuses = Arc::new(Mutex::new(Vec::new()));
    let handles = (0..clients)
        .map(|client| {
            let (acked, other_statuses, url) = (
                Arc::clone(&acked),
                Arc::clone(&other_statuses),
                url.to_owned(),
            );
            std::thread::spawn(move || {
                let agent = agent();
                let started = Instant::now();
                for n in 0.. {
                    assert!(started.elapsed() < WAIT_LIMIT, "the server never went away");
                    let title = format!("k{client}-{n}");
                    let body = json!({"title": title, "description": "d"}).to_string();
                    match send(&agent, "POST", &format!("{url}/tickets"), Some(&body), &[]) {
                        Ok(reply) if reply.status == 201 => {
                            let id = reply.json()["id"].as_u64().unwrap();
                            acked.lock().unwrap().push((id, title));
                        }
                        Ok(reply) => other_statuses.lock().unwrap().push(reply.status),
                        // The server is gone (killed or shut down).
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    (acked, other_statuses, handles)
}

/// Waits (bounded) until at least `want` creates were acknowledged.
fn wait_for_acks(acked: &Mutex<Vec<(u64, String)>>, want: usize) {
    let started = Instant::now();
    while acked.lock().unwrap().len() < want {
        assert!(started.elapsed() < WAIT_LIMIT, "too few acknowledgements");
        std::thread::yield_now();
    }
}

/// Every acknowledged ticket is in the store in `dir`, with its title.
fn assert_all_present(dir: &Path, acked: &[(u64, String)]) {
    let store = reopen(dir);
    let client = store.client();
    for (id, title) in acked {
        let ticket = client
            .get(TicketId::from(*id))
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged ticket {id} is missing"));
        assert_eq!(ticket.title.as_str(), title);
    }
    let ids: BTreeSet<u64> = acked.iter().map(|a| a.0).collect();
    assert_eq!(ids.len(), acked.len(), "an id was acknowledged twice");
    store.close().unwrap();
}

#[test]
fn kill_9_under_http_load_loses_no_acknowledged_ticket() {
    let dir = tempfile::tempdir().unwrap();
    for cycle in 0..2 {
        let server = Server::start(dir.path(), &[]);
        let (acked, _, handles) = load_until_gone(&server.url, 16);
        wait_for_acks(&acked, 150);
        let (status, _) = server.stop("KILL");
        assert!(!status.success(), "cycle {cycle}: serve was not killed");
        for handle in handles {
            handle.join().unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() >= 150);
        assert_all_present(dir.path(), &acked);
    }
}

#[test]
fn sigterm_finishes_requests_in_flight_then_closes_the_store_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (acked, other_statuses, handles) = load_until_gone(&server.url, 8);
    wait_for_acks(&acked, 100);
    let url = server.url.clone();
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "serve exited with {status}: {stderr}");
    assert!(stderr.contains("the store is closed"), "{stderr}");
    for handle in handles {
        handle.join().unwrap();
    }
    // No request was cut off with an error reply: each got a 2xx or found
    // the server gone.
    assert_eq!(*other_statuses.lock().unwrap(), Vec::<u16>::new());
    assert!(send(&agent(), "GET", &format!("{url}/health"), None, &[]).is_err());
    let acked = acked.lock().unwrap().clone();
    assert_all_present(dir.path(), &acked);
    // Closed cleanly: nothing to cut at the next open.
    let store = reopen(dir.path());
    assert!(store.recovery().torn_tail.is_none());
    store.close().unwrap();
}

/// Runs the CLI; returns (exit code, stdout, stderr) with every timestamp
/// replaced by `<time>`.
fn cli(args: &[&str], env_server: Option<&str>) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ticketlog"));
    command
        .env_remove("TICKETLOG_DIR")
        .env_remove("TICKETLOG_SERVER")
        .args(args)
        .stdin(Stdio::null());
    if let Some(url) = env_server {
        command.env("TICKETLOG_SERVER", url);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        mask_times(&String::from_utf8(output.stdout).unwrap()),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn mask_times(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() >= 24 && rest.is_char_boundary(24) && is_rfc3339_millis(&rest[..24]) {
            out += "<time>";
            rest = &rest[24..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[test]
fn the_cli_with_server_prints_and_exits_as_it_does_locally() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let served = dir.path().join("served");
    let server = Server::start(&served, &[]);
    let local_dir = local.to_str().unwrap();
    let scripts: &[&[&str]] = &[
        &["add", "--title", "one", "--description", "first"],
        &["add", "--title", "two", "--description", "second"],
        &[
            "--json",
            "add",
            "--title",
            "three",
            "--description",
            "third",
        ],
        &["get", "1"],
        &["--json", "get", "2"],
        &["update", "1", "--status", "in-progress"],
        &["update", "1", "--title", "uno", "--expect-version", "1"],
        &[
            "--json",
            "update",
            "2",
            "--status",
            "done",
            "--expect-version",
            "1",
        ],
        &["get", "99"],
        &["update", "99", "--status", "done"],
        &["list"],
        &["list", "--status", "done"],
        &["--json", "list", "--after", "1", "--limit", "1"],
        &["delete", "3"],
        &["delete", "3"],
        &["history", "1"],
        &["--json", "history", "3"],
        &["history", "42"],
    ];
    for (i, args) in scripts.iter().enumerate() {
        let mut local_args = vec!["--dir", local_dir];
        local_args.extend_from_slice(args);
        let mut remote_args = vec!["--server", server.url.as_str()];
        remote_args.extend_from_slice(args);
        let expected = cli(&local_args, None);
        // Every other command names the server through the environment.
        let remote = if i % 2 == 0 {
            cli(&remote_args, None)
        } else {
            cli(args, Some(&server.url))
        };
        assert_eq!(remote, expected, "ticketlog {}", args.join(" "));
    }
    // The local `--json` is the wire form: it matches the document's schemas.
    let api = openapi();
    for (args, schema) in [
        (vec!["--json", "get", "1"], "Ticket"),
        (vec!["--json", "list"], "Ticket"),
        (vec!["--json", "history", "1"], "Event"),
        (vec!["--json", "stats"], "Stats"),
    ] {
        let mut local_args = vec!["--dir", local_dir];
        local_args.extend_from_slice(&args);
        let (code, stdout, _) = cli(&local_args, None);
        assert_eq!(code, Some(0));
        assert!(!stdout.is_empty());
        let schema = json!({ "$ref": format!("#/components/schemas/{schema}") });
        for line in stdout.lines() {
            let value: Value =
                serde_json::from_str(&line.replace("<time>", "2026-01-02T03:04:05.678Z"))
                    .unwrap_or_else(|e| panic!("{line}: {e}"));
            if let Err(why) = check_schema(&api, &schema, &value, "$") {
                panic!("ticketlog {}: {why}: {line}", args.join(" "));
            }
        }
    }
    // Stats: the same counts (the local log also holds a seal per close).
    let (code, stdout, _) = cli(&["--server", &server.url, "stats"], None);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("tickets: 2 (todo 0, in-progress 1, done 1)\nnext id: 4\n"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&["--server", &server.url, "snapshot"], None);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("not with --server"), "{stderr}");
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
    let (code, _, stderr) = cli(&["--server", &server_gone_url(), "get", "1"], None);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
}

/// A loopback URL where nothing listens: a port bound and released.
fn server_gone_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[test]
fn a_signal_right_after_the_address_is_printed_stops_it_cleanly() {
    // The signal handlers are installed before the address is printed, so a
    // signal at once ends the server in order rather than killing it.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, stderr) = server.stop("INT");
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("the store is closed"), "{stderr}");
}

#[test]
fn if_match_lets_exactly_one_of_racing_updates_and_deletes_win() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);
    let tickets = 20;
    for n in 0..tickets {
        let reply = http.post(
            "/tickets",
            &json!({"title": format!("t{n}"), "description": "d"}).to_string(),
        );
        assert_eq!(reply.status, 201);
    }
    let url = server.url.clone();
    for id in 1..=tickets {
        // Eight updates and eight deletes, all at version 1: whatever the
        // order, the first to land changes the version, so exactly one wins.
        let wins: Vec<u16> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..16)
                .map(|racer| {
                    let url = &url;
                    scope.spawn(move || {
                        let agent = agent();
                        let path = format!("{url}/tickets/{id}");
                        let reply = if racer % 2 == 0 {
                            send(
                                &agent,
                                "PATCH",
                                &path,
                                Some(r#"{"status":"done"}"#),
                                &[("If-Match", "\"1\"")],
                            )
                        } else {
                            send(&agent, "DELETE", &path, None, &[("If-Match", "\"1\"")])
                        };
                        reply.unwrap().status
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(
            wins.iter().filter(|status| **status == 200).count(),
            1,
            "ticket {id}: {wins:?}"
        );
        assert!(
            wins.iter().all(|status| [200, 404, 412].contains(status)),
            "ticket {id}: {wins:?}"
        );
    }
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
}

#[test]
fn health_reports_the_last_opens_recovery_and_stats_the_last_lsn_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--durability", "interval:50"]);
    let http = Http::new(&server);
    for i in 0..3 {
        let body = json!({"title": format!("t{i}"), "description": "d"}).to_string();
        assert_eq!(http.post("/tickets", &body).status, 201);
    }
    let stats = http.get("/stats", "/stats").json();
    assert_eq!(stats["last_lsn"], 3);
    let health = http.get("/health", "/health").json();
    assert_eq!(health["durability"], "interval:50");
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");

    // A torn tail: half a record's worth of garbage after the last record.
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .expect("a log segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let good_len = bytes.len() as u64;
    bytes.extend_from_slice(&[0xAB; 13]);
    std::fs::write(&segment, bytes).unwrap();

    let server = Server::start(dir.path(), &[]);
    let http = Http::new(&server);
    let health = http.get("/health", "/health").json();
    let recovery = &health["recovery"];
    // Every record was replayed (closing may have added one of its own).
    let replayed = recovery["records_replayed"].as_u64().unwrap();
    assert!(replayed >= 3, "{health:#}");
    assert_eq!(recovery["torn_tail"]["offset"], good_len, "{health:#}");
    assert_eq!(recovery["torn_tail"]["bytes"], 13, "{health:#}");
    assert_eq!(health["durability"], "always");
    let stats = http.get("/stats", "/stats").json();
    assert_eq!(stats["last_lsn"], replayed);
    let created = http.post("/tickets", r#"{"title":"t","description":"d"}"#);
    assert_eq!(created.status, 201);
    assert_eq!(
        http.get("/stats", "/stats").json()["last_lsn"],
        replayed + 1
    );
}

#[test]
fn the_console_is_served_at_the_root_with_its_types_and_a_strict_policy_and_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "let-me-in\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--token-file", token_file.to_str().unwrap()],
    );
    let agent = agent();
    for (path, content_type, contains) in [
        (
            "/",
            "text/html; charset=utf-8",
            "<script src=\"/console/app.js\"",
        ),
        (
            "/console/app.js",
            "text/javascript; charset=utf-8",
            "EventSource",
        ),
        ("/console/app.css", "text/css; charset=utf-8", ".board"),
        ("/console/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let reply = send(&agent, "GET", &format!("{}{path}", server.url), None, &[]).unwrap();
        assert_eq!(reply.status, 200, "{path}: {reply:#?}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert!(reply.body.contains(contains), "{path}");
        let policy = reply.header("content-security-policy").unwrap_or("");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    // The page has no inline script or style for the policy to refuse.
    let page = send(&agent, "GET", &format!("{}/", server.url), None, &[]).unwrap();
    assert!(!page.body.contains("<script>") && !page.body.contains("style="));
    assert!(!page.body.contains("http://") && !page.body.contains("https://"));
    // The API still needs the token; an unknown console file is a 404.
    let api = send(&agent, "GET", &format!("{}/stats", server.url), None, &[]).unwrap();
    assert_eq!(api.status, 401);
    let missing = send(
        &agent,
        "GET",
        &format!("{}/console/nope.js", server.url),
        None,
        &[("Authorization", "Bearer let-me-in")],
    )
    .unwrap();
    assert_eq!(
        (missing.status, missing.error_code()),
        (404, "not_found".into())
    );
    let head = send(&agent, "HEAD", &format!("{}/", server.url), None, &[]).unwrap();
    assert_eq!(head.status, 200);
    let post = send(
        &agent,
        "POST",
        &format!("{}/", server.url),
        Some("x"),
        &[("Authorization", "Bearer let-me-in")],
    )
    .unwrap();
    assert_eq!(post.status, 405);
}
