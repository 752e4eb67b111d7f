//! The Redis side both ends share: the keys under a prefix, the consumer
//! group, connections with bounded timeouts, and reading stream entries out of
//! `XRANGE` / `XREADGROUP` replies. The message format itself is
//! [`protocol::worker::Job`](crate::protocol::worker::Job).

use redis::Value;
use std::collections::HashMap;
use std::time::Duration;

/// The consumer group every worker reads through.
pub const GROUP: &str = "workers";
/// Timeout of every Redis call of the server (never blocks a request long).
pub const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// The Redis keys under one prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    /// The stream of waiting runs.
    pub stream: String,
    /// Set by the server; gone means Redis lost its data.
    pub marker: String,
}

impl Keys {
    /// The keys under `prefix` (e.g. `testscheduler:`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            stream: format!("{prefix}runs"),
            marker: format!("{prefix}epoch"),
        }
    }
}

/// Text of a reply value, if it is one.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// Stream entries `[[id, [k, v, …]], …]` as (id, fields).
pub fn entries(v: &Value) -> Vec<(String, HashMap<String, String>)> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Array(pair) = item else { continue };
        let (Some(id), Some(kv)) = (pair.first().and_then(text), pair.get(1)) else {
            continue;
        };
        let mut fields = HashMap::new();
        match kv {
            Value::Array(kv) => {
                for c in kv.chunks(2) {
                    if let [k, v] = c {
                        if let (Some(k), Some(v)) = (text(k), text(v)) {
                            fields.insert(k, v);
                        }
                    }
                }
            }
            Value::Map(kv) => {
                for (k, v) in kv {
                    if let (Some(k), Some(v)) = (text(k), text(v)) {
                        fields.insert(k, v);
                    }
                }
            }
            _ => {}
        }
        out.push((id, fields));
    }
    out
}

/// The entries of an `XREADGROUP` reply (nil when nothing came).
pub fn read_reply_entries(v: &Value) -> Vec<(String, HashMap<String, String>)> {
    match v {
        Value::Array(streams) => streams
            .iter()
            .flat_map(|s| match s {
                Value::Array(pair) => pair.get(1).map(entries).unwrap_or_default(),
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams.iter().flat_map(|(_, v)| entries(v)).collect(),
        _ => Vec::new(),
    }
}

/// Opens a connection with bounded connect, read and write times.
pub fn connect(client: &redis::Client, read_timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(IO_TIMEOUT)?;
    conn.set_read_timeout(Some(read_timeout))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xreadgroup_reply_is_read() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            b("p:runs"),
            Value::Array(vec![Value::Array(vec![
                b("1-0"),
                Value::Array(vec![b("id"), b("5"), b("path"), b("./tests/")]),
            ])]),
        ])]);
        let got = read_reply_entries(&reply);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "1-0");
        assert_eq!(got[0].1.get("id").map(String::as_str), Some("5"));
        assert!(read_reply_entries(&Value::Nil).is_empty());
    }
}
