//! Server and client sessions talking to each other in memory.

use bytes::{Bytes, BytesMut};

use super::client::{ClientEvent, ClientSession, ClientSessionConfig};
use super::server::{PublishMode, ServerEvent, ServerSession, ServerSessionConfig};
use super::MediaKind;
use crate::amf0::Amf0Value;
use crate::handshake::HandshakeKind;

/// Moves bytes both ways until neither side has anything to say; returns the server's events.
fn pump(server: &mut ServerSession, client: &mut ClientSession, split: usize) -> Vec<ServerEvent> {
    let mut events = Vec::new();
    let mut s_in = BytesMut::new();
    let mut c_in = BytesMut::new();
    for _ in 0..64 {
        let mut moved = false;
        if let Some(b) = client.take_output() {
            moved = true;
            for piece in b.chunks(split) {
                s_in.extend_from_slice(piece);
                server.feed(&mut s_in).unwrap();
            }
        }
        while let Some(e) = server.poll_event() {
            events.push(e);
        }
        if let Some(b) = server.take_output() {
            moved = true;
            for piece in b.chunks(split) {
                c_in.extend_from_slice(piece);
                client.feed(&mut c_in).unwrap();
            }
        }
        if !moved {
            break;
        }
    }
    events
}

fn client_events(client: &mut ClientSession) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn connected_pair(kind: HandshakeKind, split: usize) -> (ServerSession, ClientSession) {
    let mut server = ServerSession::new(ServerSessionConfig {
        out_chunk_size: 4096,
        ..Default::default()
    });
    let mut cfg = ClientSessionConfig::new("live", "rtmp://127.0.0.1/live?token=abc");
    cfg.handshake = kind;
    let mut client = ClientSession::new(cfg);
    client.start();
    let events = pump(&mut server, &mut client, split);
    match &events[..] {
        [ServerEvent::Connect {
            app,
            query,
            tc_url,
            object,
        }] => {
            // The client asks for the Enhanced RTMP codecs it takes (relays pass them on).
            let Some(Amf0Value::StrictArray(fourcc)) = object.get("fourCcList") else {
                panic!("no fourCcList in {object:?}");
            };
            for codec in ["av01", "vp09", "hvc1", "Opus"] {
                assert!(fourcc.iter().any(|v| v.as_str() == Some(codec)), "{codec}");
            }
            assert_eq!(app, "live");
            assert_eq!(query, "token=abc");
            assert_eq!(tc_url.as_deref(), Some("rtmp://127.0.0.1/live?token=abc"));
        }
        other => panic!("expected connect, got {other:?}"),
    }
    server.accept_connect(0.0);
    assert!(pump(&mut server, &mut client, split).is_empty());
    assert_eq!(client_events(&mut client), vec![ClientEvent::Connected]);
    (server, client)
}

fn codes(events: &[ClientEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Status { code, .. } => Some(code.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn publish_media_and_unpublish() {
    for (kind, split) in [(HandshakeKind::Simple, 100_000), (HandshakeKind::Digest, 7)] {
        let (mut server, mut client) = connected_pair(kind, split);
        client.publish("cam1?sign=1-abc");
        let events = pump(&mut server, &mut client, split);
        let sid = match &events[..] {
            [ServerEvent::Publish {
                stream_id,
                name,
                query,
                mode,
            }] => {
                assert_eq!(
                    (name.as_str(), query.as_str(), *mode),
                    ("cam1", "sign=1-abc", PublishMode::Live)
                );
                *stream_id
            }
            other => panic!("expected publish, got {other:?}"),
        };
        server.accept_publish(sid, "cam1");
        pump(&mut server, &mut client, split);
        assert_eq!(
            codes(&client_events(&mut client)),
            vec!["NetStream.Publish.Start"]
        );

        client.send_metadata(&[
            2, 0, 10, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 5,
        ]);
        let big = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
        client.send_media(MediaKind::Video, 0x0100_0000, &big);
        client.send_media(MediaKind::Audio, 40, b"\xaf\x01abc");
        let events = pump(&mut server, &mut client, split);
        assert!(matches!(&events[0], ServerEvent::Metadata { payload, .. } if payload.len() == 14));
        assert_eq!(
            events[1],
            ServerEvent::Media {
                kind: MediaKind::Video,
                stream_id: sid,
                timestamp: 0x0100_0000,
                payload: big
            }
        );
        assert!(matches!(
            &events[2],
            ServerEvent::Media {
                kind: MediaKind::Audio,
                timestamp: 40,
                ..
            }
        ));

        client.close_stream();
        let events = pump(&mut server, &mut client, split);
        assert_eq!(events, vec![ServerEvent::Unpublish { stream_id: sid }]);
        assert_eq!(
            codes(&client_events(&mut client)),
            vec!["NetStream.Unpublish.Success"]
        );
    }
}

#[test]
fn play_receives_status_and_media() {
    let (mut server, mut client) = connected_pair(HandshakeKind::Simple, 1000);
    client.play("cam1");
    let events = pump(&mut server, &mut client, 1000);
    let ServerEvent::Play {
        stream_id,
        name,
        start,
        ..
    } = &events[0]
    else {
        panic!("{events:?}")
    };
    assert_eq!((name.as_str(), *start), ("cam1", -2.0));
    let sid = *stream_id;
    server.accept_play(sid, "cam1", true);
    server.unpublish_notify(sid, "cam1");
    server.publish_notify(sid, "cam1");
    pump(&mut server, &mut client, 1000);
    assert_eq!(
        codes(&client_events(&mut client)),
        vec![
            "NetStream.Play.Reset",
            "NetStream.Play.Start",
            "NetStream.Play.UnpublishNotify",
            "NetStream.Play.PublishNotify"
        ]
    );
    let mut wire = BytesMut::new();
    server.encoder().encode(
        6,
        &crate::chunk::MessageHeader {
            timestamp: 33,
            type_id: 9,
            stream_id: sid,
        },
        b"\x17\x01frame",
        &mut wire,
    );
    client.feed(&mut wire).unwrap();
    assert_eq!(
        client_events(&mut client),
        vec![ClientEvent::Media {
            kind: MediaKind::Video,
            timestamp: 33,
            payload: Bytes::from_static(b"\x17\x01frame")
        }]
    );
}

#[test]
fn publish_without_create_stream_is_accepted_but_a_busy_stream_is_not() {
    let (mut server, _client) = connected_pair(HandshakeKind::Simple, 1000);
    let payload = crate::message::encode_command(
        "publish",
        0.0,
        &crate::amf0::Amf0Value::Null,
        &[crate::amf0::Amf0Value::string("x")],
    );
    // The client announced chunk size 4096 to the server, so any chunk size >= payload works.
    let enc = crate::chunk::ChunkEncoder::new(4096);
    let mut wire = BytesMut::new();
    crate::message::write_message(&enc, &mut wire, 3, 20, 9, 0, &payload);
    server.feed(&mut wire).unwrap();
    assert!(matches!(
        server.poll_event(),
        Some(ServerEvent::Publish { stream_id: 9, .. })
    ));
    server.accept_publish(9, "x");
    crate::message::write_message(&enc, &mut wire, 3, 20, 9, 0, &payload);
    assert!(matches!(
        server.feed(&mut wire),
        Err(super::SessionError::Protocol(_))
    ));
}

#[test]
fn enhanced_rtmp_capabilities_are_answered() {
    use crate::amf0::Amf0Value;
    let object = Amf0Value::object([
        ("app", Amf0Value::string("live")),
        (
            "fourCcList",
            Amf0Value::StrictArray(vec![Amf0Value::string("hvc1"), Amf0Value::string("av01")]),
        ),
        (
            "videoFourCcInfoMap",
            Amf0Value::object([
                ("hvc1", Amf0Value::Number(1.0)),
                ("*", Amf0Value::Number(7.0)),
            ]),
        ),
        ("capsEx", Amf0Value::Number(0x0F as f64)),
    ]);
    let caps = super::server::enhanced_caps_for_test(&object);
    let get = |k: &str| caps.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        get("fourCcList"),
        Some(Amf0Value::StrictArray(vec![
            Amf0Value::string("hvc1"),
            Amf0Value::string("av01")
        ]))
    );
    assert_eq!(
        get("videoFourCcInfoMap"),
        Some(Amf0Value::object([
            ("hvc1", Amf0Value::Number(4.0)),
            ("*", Amf0Value::Number(4.0))
        ]))
    );
    assert_eq!(
        get("capsEx"),
        Some(Amf0Value::Number(14.0)),
        "no Reconnect: Rill never asks for one"
    );
    assert!(super::server::enhanced_caps_for_test(&Amf0Value::object([(
        "app",
        Amf0Value::string("x")
    )]))
    .is_empty());
}

#[test]
fn aggregate_messages_arrive_as_their_media_parts() {
    let (mut server, mut client) = connected_pair(HandshakeKind::Simple, 1000);
    client.publish("agg");
    let events = pump(&mut server, &mut client, 1000);
    let ServerEvent::Publish { stream_id, .. } = events[0] else {
        panic!("{events:?}")
    };
    server.accept_publish(stream_id, "agg");
    pump(&mut server, &mut client, 1000);
    let mut body = Vec::new();
    for (ty, ts, data) in [
        (9u8, 100u32, &b"\x17\x01v1"[..]),
        (8, 120, &b"\xaf\x01a1"[..]),
    ] {
        body.push(ty);
        body.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        body.extend_from_slice(&ts.to_be_bytes()[1..]);
        body.extend_from_slice(&[0, 0, 0, 0]);
        body.extend_from_slice(data);
        body.extend_from_slice(&(11 + data.len() as u32).to_be_bytes());
    }
    let mut wire = BytesMut::new();
    crate::message::write_message(
        &crate::chunk::ChunkEncoder::new(4096),
        &mut wire,
        6,
        22,
        stream_id,
        5000,
        &body,
    );
    server.feed(&mut wire).unwrap();
    let got: Vec<ServerEvent> = std::iter::from_fn(|| server.poll_event()).collect();
    assert_eq!(
        got,
        vec![
            ServerEvent::Media {
                kind: MediaKind::Video,
                stream_id,
                timestamp: 5000,
                payload: Bytes::from_static(b"\x17\x01v1")
            },
            ServerEvent::Media {
                kind: MediaKind::Audio,
                stream_id,
                timestamp: 5020,
                payload: Bytes::from_static(b"\xaf\x01a1")
            },
        ]
    );
}
