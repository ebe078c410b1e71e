//! Hub behaviour without sockets: publishing, joining, replacing, lagging.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_media::{Frame, FrameKind};
use tokio_util::sync::CancellationToken;

use super::*;

fn hub(queue: usize, idle: Duration) -> Arc<Hub> {
    hub_batching(queue, idle, Batching::Frame)
}

fn hub_batching(queue: usize, idle: Duration, batching: Batching) -> Arc<Hub> {
    Hub::new(HubConfig {
        limits: StreamLimits {
            gop_cache: true,
            gop_max_bytes: 1 << 20,
            gop_max_frames: 1000,
            queue,
            chunk_size: 4096,
            batching,
        },
        publisher_idle_timeout: idle,
    })
}

fn video(ts: u32, body: &'static [u8]) -> Frame {
    Frame::from_flv_body(FrameKind::Video, ts, Bytes::from_static(body)).unwrap()
}

const SEQ: &[u8] = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f";
const KEY: &[u8] = b"\x17\x01\x00\x00\x00key";
const INTER: &[u8] = b"\x27\x01\x00\x00\x00inter";

fn ts_of(p: &Packet) -> Option<u32> {
    match p {
        Packet::Frame(f) => Some(f.frame.timestamp),
        _ => None,
    }
}

#[tokio::test]
async fn late_viewer_gets_sequence_header_then_gop() {
    let hub = hub(64, Duration::from_secs(5));
    let publisher = hub
        .publish("live", "a", 1, CancellationToken::new())
        .unwrap();
    publisher.push(video(0, SEQ));
    publisher.push(video(0, KEY));
    publisher.push(video(33, INTER));
    publisher.push(video(66, KEY));
    publisher.push(video(99, INTER));
    let mut sub = hub.subscribe("live", "a");
    let first = sub.recv().await.unwrap();
    assert!(matches!(&first, Packet::Frame(f) if f.frame.sequence_header));
    let p = sub.recv().await.unwrap();
    assert!(
        matches!(&p, Packet::Frame(f) if f.frame.is_video_keyframe() && f.frame.timestamp == 66)
    );
    assert_eq!(ts_of(&sub.recv().await.unwrap()), Some(99));
    publisher.push(video(133, INTER));
    assert_eq!(ts_of(&sub.recv().await.unwrap()), Some(133));
    assert!(sub.try_recv().unwrap().is_none());
}

#[tokio::test]
async fn second_publisher_refused_unless_first_is_idle() {
    let hub = hub(64, Duration::from_millis(100));
    let kick = CancellationToken::new();
    let first = hub.publish("live", "a", 1, kick.clone()).unwrap();
    first.push(video(0, KEY));
    assert_eq!(
        hub.publish("live", "a", 2, CancellationToken::new())
            .unwrap_err(),
        PublishError::AlreadyPublishing("/live/a".into())
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = hub
        .publish("live", "a", 2, CancellationToken::new())
        .unwrap();
    assert!(kick.is_cancelled(), "the idle publisher is told to go");
    assert!(
        !first.push(video(40, KEY)),
        "the replaced publisher can no longer push"
    );
    drop(first);
    assert!(
        hub.stream("live", "a").unwrap().is_live(),
        "dropping the old one must not unpublish the new"
    );
    drop(second);
    assert!(
        hub.stream("live", "a").is_none(),
        "no publisher, no viewer: removed"
    );
}

#[tokio::test]
async fn viewer_waits_and_survives_republish_with_continuing_timestamps() {
    let hub = hub(64, Duration::from_secs(5));
    let mut sub = hub.subscribe("live", "a");
    let p = hub
        .publish("live", "a", 1, CancellationToken::new())
        .unwrap();
    assert!(matches!(sub.recv().await.unwrap(), Packet::Publish));
    p.push(video(1000, KEY));
    assert_eq!(ts_of(&sub.recv().await.unwrap()), Some(1000));
    drop(p);
    assert!(matches!(sub.recv().await.unwrap(), Packet::Unpublish));
    assert!(
        hub.stream("live", "a").is_some(),
        "a waiting viewer keeps the stream"
    );
    let p = hub
        .publish("live", "a", 2, CancellationToken::new())
        .unwrap();
    p.push(video(0, KEY));
    assert!(matches!(sub.recv().await.unwrap(), Packet::Publish));
    assert_eq!(
        ts_of(&sub.recv().await.unwrap()),
        Some(1001),
        "timestamps continue across republish"
    );
}

#[tokio::test]
async fn slow_viewer_skips_to_next_keyframe_and_publisher_never_waits() {
    let hub = hub(16, Duration::from_secs(5));
    let p = hub
        .publish("live", "a", 1, CancellationToken::new())
        .unwrap();
    let mut slow = hub.subscribe("live", "a");
    p.push(video(0, SEQ));
    for i in 0..40 {
        p.push(video(i * 33, if i == 0 { KEY } else { INTER }));
    }
    p.push(video(40 * 33, KEY));
    p.push(video(41 * 33, INTER));
    let mut got = Vec::new();
    while let Some(pk) = slow.try_recv().unwrap() {
        got.push(pk);
    }
    // The sequence header was lost in the lag, so it is resent before the keyframe.
    assert!(matches!(&got[0], Packet::Frame(f) if f.frame.sequence_header));
    assert!(
        matches!(&got[1], Packet::Frame(f) if f.frame.is_video_keyframe() && f.frame.timestamp == 40 * 33)
    );
    assert_eq!(
        got.len(),
        3,
        "resumes at the keyframe, then the live frames"
    );
    assert!(hub.counters.frames_dropped.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn viewer_that_keeps_lagging_is_dropped() {
    let hub = hub(16, Duration::from_secs(5));
    let p = hub
        .publish("live", "a", 1, CancellationToken::new())
        .unwrap();
    let mut slow = hub.subscribe("live", "a");
    let mut ended = None;
    for round in 0..10u32 {
        for i in 0..40 {
            p.push(video(round * 10_000 + i, KEY));
        }
        if let Err(e) = slow.try_recv() {
            ended = Some(e);
            break;
        }
    }
    assert_eq!(ended, Some(ViewerEnd::TooSlow));
    assert_eq!(hub.counters.viewers_dropped.load(Ordering::Relaxed), 1);
}

const AUDIO: &[u8] = b"\xaf\x01\x21\x10";

fn audio(ts: u32) -> Frame {
    Frame::from_flv_body(FrameKind::Audio, ts, Bytes::from_static(AUDIO)).unwrap()
}

async fn batch(sub: &mut Subscription, max: usize) -> Vec<Packet> {
    let mut out = Vec::new();
    sub.next_batch(max, &mut out).await.unwrap();
    out
}

fn ready(sub: &mut Subscription) -> usize {
    std::iter::from_fn(|| sub.try_recv().unwrap()).count()
}

#[tokio::test(start_paused = true)]
async fn frame_policy_sends_each_frame_at_once() {
    let hub = hub(64, Duration::from_secs(5));
    let p = hub
        .publish("live", "f", 1, CancellationToken::new())
        .unwrap();
    let mut sub = hub.subscribe("live", "f");
    p.push(audio(0));
    assert_eq!(ready(&mut sub), 1);
    p.push(audio(23));
    p.push(video(30, KEY));
    assert_eq!(batch(&mut sub, 64).await.len(), 2);
    p.push(audio(46));
    p.push(audio(69));
    assert_eq!(
        batch(&mut sub, 1).await.len(),
        1,
        "the size cap ends a batch"
    );
    assert_eq!(ready(&mut sub), 1);
}

#[tokio::test(start_paused = true)]
async fn coalesced_audio_rides_with_the_next_picture_or_leaves_after_the_wait() {
    let wait = Duration::from_millis(40);
    let hub = hub_batching(64, Duration::from_secs(5), Batching::Coalesced { wait });
    let p = hub
        .publish("live", "c", 1, CancellationToken::new())
        .unwrap();
    let mut sub = hub.subscribe("live", "c");
    p.push(audio(0));
    p.push(audio(23));
    assert_eq!(ready(&mut sub), 0, "audio is held back");
    p.push(video(30, KEY));
    let b = batch(&mut sub, 64).await;
    assert_eq!(b.iter().filter_map(ts_of).collect::<Vec<_>>(), [0, 23, 30]);
    // No picture comes: the audio leaves after the wait, released by the stream's flusher.
    p.push(audio(46));
    let started = tokio::time::Instant::now();
    assert_eq!(batch(&mut sub, 64).await.len(), 1);
    assert_eq!(started.elapsed(), wait);
}

#[tokio::test(start_paused = true)]
async fn merged_sends_one_batch_per_window() {
    let window = Duration::from_millis(100);
    let hub = hub_batching(64, Duration::from_secs(5), Batching::Merged { window });
    let p = hub
        .publish("live", "m", 1, CancellationToken::new())
        .unwrap();
    let mut sub = hub.subscribe("live", "m");
    let started = tokio::time::Instant::now();
    p.push(video(0, KEY));
    tokio::time::sleep(Duration::from_millis(30)).await;
    p.push(audio(30));
    p.push(video(33, INTER));
    assert_eq!(ready(&mut sub), 0);
    let b = batch(&mut sub, 64).await;
    assert_eq!((b.len(), started.elapsed()), (3, window));
    // A frame that arrives once the window is over leaves with the batch at once.
    p.push(video(66, INTER));
    tokio::time::sleep(window).await;
    p.push(video(166, INTER));
    assert_eq!(ready(&mut sub), 2);
}

#[tokio::test(start_paused = true)]
async fn a_joiner_gets_held_back_frames_once_and_unpublish_flushes() {
    let window = Duration::from_millis(100);
    let hub = hub_batching(64, Duration::from_secs(5), Batching::Merged { window });
    let p = hub
        .publish("live", "j", 1, CancellationToken::new())
        .unwrap();
    p.push(video(0, SEQ));
    p.push(video(0, KEY));
    // Joins while the frames are held back: not in its snapshot, so not twice.
    let mut sub = hub.subscribe("live", "j");
    assert_eq!(ready(&mut sub), 0);
    let b = batch(&mut sub, 64).await;
    assert_eq!(b.len(), 2);
    // A later joiner gets them from the caches.
    let mut late = hub.subscribe("live", "j");
    assert_eq!(ready(&mut late), 2);
    p.push(audio(10));
    drop(p);
    let b = batch(&mut sub, 64).await;
    assert!(matches!(b[..], [Packet::Frame(_), Packet::Unpublish]));
}

#[tokio::test]
async fn a_late_viewer_gets_color_info_and_the_channel_layout_sent_once_at_the_start() {
    let hub = hub(64, Duration::from_secs(5));
    let publisher = hub
        .publish("live", "a", 1, CancellationToken::new())
        .unwrap();
    let av1_seq = b"\x90av01\x81\x08\x0c\x00";
    let color_info = b"\x94av01\x02\x00\x09colorInfo";
    let opus_seq = b"\x90OpusHead";
    let layout = b"\x94Opus\x00\x02";
    let key = b"\x91av01key";
    let opus = b"\x91Opusframe";
    publisher.push(video(0, av1_seq));
    publisher.push(video(0, color_info));
    publisher
        .push(Frame::from_flv_body(FrameKind::Audio, 0, Bytes::from_static(opus_seq)).unwrap());
    publisher.push(Frame::from_flv_body(FrameKind::Audio, 0, Bytes::from_static(layout)).unwrap());
    for ts in [0, 1000] {
        publisher.push(video(ts, key));
        publisher
            .push(Frame::from_flv_body(FrameKind::Audio, ts, Bytes::from_static(opus)).unwrap());
    }
    // Joins after a second keyframe: the first GOP (where the settings were) is gone.
    let mut sub = hub.subscribe("live", "a");
    let mut got = Vec::new();
    while let Ok(Some(Packet::Frame(f))) = sub.try_recv() {
        got.push(f.frame.payload.clone());
    }
    let want: Vec<&[u8]> = vec![av1_seq, opus_seq, color_info, layout, key, opus];
    assert_eq!(got, want);
}
