//! The real servers `scripts/test` starts are up and speak their protocols. In CI every one must
//! be present (a missing variable fails the test); elsewhere the test says what it skipped.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::service;

fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[tokio::test]
async fn postgres_accepts_a_startup_handshake() {
    let Some(url) = service("PARKFLOW_TEST_POSTGRES_URL") else {
        return;
    };
    let mut s = TcpStream::connect(host_port(&url)).await.unwrap();
    // StartupMessage, protocol 3.0, user postgres: a trust-auth server answers AuthenticationOk.
    let params = b"user\0postgres\0database\0postgres\0\0";
    let mut msg = Vec::new();
    msg.extend_from_slice(&((8 + params.len()) as i32).to_be_bytes());
    msg.extend_from_slice(&196_608i32.to_be_bytes());
    msg.extend_from_slice(params);
    s.write_all(&msg).await.unwrap();
    let mut head = [0u8; 9];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], b'R', "expected an authentication message");
    assert_eq!(
        i32::from_be_bytes(head[5..9].try_into().unwrap()),
        0,
        "AuthenticationOk"
    );
}

#[tokio::test]
async fn kafka_broker_answers_api_versions() {
    let Some(brokers) = service("PARKFLOW_TEST_KAFKA_BROKERS") else {
        return;
    };
    let addr = brokers.split(',').next().unwrap().to_owned();
    let mut s = TcpStream::connect(addr).await.unwrap();
    // ApiVersions v0 (api key 18) with correlation id 42.
    let client = b"parkflow-test";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&42i32.to_be_bytes());
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut msg = (body.len() as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    s.write_all(&msg).await.unwrap();
    let mut head = [0u8; 10];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(
        i32::from_be_bytes(head[4..8].try_into().unwrap()),
        42,
        "correlation id echoed"
    );
    assert_eq!(
        i16::from_be_bytes(head[8..10].try_into().unwrap()),
        0,
        "no error"
    );
}

#[tokio::test]
async fn clickhouse_answers_a_query_over_http() {
    let Some(url) = service("PARKFLOW_TEST_CLICKHOUSE_URL") else {
        return;
    };
    let mut s = TcpStream::connect(host_port(&url)).await.unwrap();
    s.write_all(b"GET /?query=SELECT%201%2B1 HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
    assert!(out.trim_end().ends_with('2'), "{out}");
}
