use super::*;
use dilly::{Fingerprint, SymbolId};

fn func() -> RawFunc {
    RawFunc::Registered {
        id: SymbolId::of("a::b"),
        fingerprint: Fingerprint::of("fn()"),
        shape: Fingerprint::of("shape"),
        state: vec![1, 2, 3],
    }
}

#[test]
fn messages_round_trip() {
    let to = [
        ToWorker::Config(Config {
            registry: RegistryFingerprint {
                count: 3,
                hash: Fingerprint::of("x"),
            },
            memory_limit: Some(1 << 30),
            max_frame: 99,
            spin: std::time::Duration::from_micros(50),
            result_window: std::time::Duration::from_millis(1),
            initializer: Some(func()),
        }),
        ToWorker::Reject,
        ToWorker::Load {
            key: 7,
            func: func(),
        },
        ToWorker::Clear,
        ToWorker::Exit,
        ToWorker::Fork { spawn_id: 4 },
    ];
    for msg in to {
        let frame = msg.encode().unwrap();
        let body = read_frame(&mut &frame[..], 1 << 20).unwrap().unwrap();
        assert_eq!(ToWorker::decode(&body).unwrap(), msg);
    }
    let from = [
        FromWorker::Hello {
            protocol: PROTOCOL,
            pid: 5,
            spawn_id: 6,
            token: [1; 16],
            registry: RegistryFingerprint {
                count: 1,
                hash: Fingerprint::of("y"),
            },
        },
        FromWorker::Ready,
        FromWorker::InitFailed(TaskError::Rejected {
            error: dilly::Error::UnknownSymbol {
                id: SymbolId::of("q"),
                name: Some("q".into()),
            },
        }),
        FromWorker::Done(vec![4, 5]),
        FromWorker::Failed(TaskError::Panicked {
            message: "boom".into(),
            location: Some("a.rs:1:2".into()),
            backtrace: Some("   0: f\n             at a.rs:1:2\n".into()),
        }),
        FromWorker::Failed(TaskError::Unserializable {
            error: dilly::Error::Encode {
                what: "result".into(),
                detail: "no".into(),
            },
        }),
        FromWorker::Failed(TaskError::Rejected {
            error: dilly::Error::SignatureMismatch {
                name: "a::f".into(),
                expected: "fn(u8) -> u8".into(),
                expected_fingerprint: Fingerprint::of("fn(u8) -> u8"),
                found: Fingerprint::of("fn(u16) -> u16"),
            },
        }),
        FromWorker::Forked {
            spawn_id: 1,
            pid: 2,
        },
        FromWorker::Exited { pid: 2, status: 9 },
        FromWorker::Busy,
    ];
    for msg in from {
        let frame = msg.encode().unwrap();
        let body = read_frame(&mut &frame[..], 1 << 20).unwrap().unwrap();
        assert_eq!(FromWorker::decode(&body).unwrap(), msg);
    }
}

#[test]
fn fast_paths_match_the_messages() {
    let items: Items = [&[1u8][..], &[], &[2, 3]].into_iter().collect();
    let frame = encode_run(7, &items, AfterRun::Wait).unwrap();
    let body = read_frame(&mut &frame[..], 1 << 20).unwrap().unwrap();
    let (key, borrowed) = decode_run(&body).unwrap().unwrap();
    assert_eq!(key, 7);
    assert_eq!(borrowed, items.iter().collect::<Vec<_>>());
    assert_eq!(after_run(&body), AfterRun::Wait);
    // The other variants carry the same chunk and say what comes after it.
    for after in [AfterRun::Spin, AfterRun::Exit] {
        let frame = encode_run(7, &items, after).unwrap();
        let variant = read_frame(&mut &frame[..], 1 << 20).unwrap().unwrap();
        assert_eq!(after_run(&variant), after);
        assert_eq!(decode_run(&variant).unwrap(), decode_run(&body).unwrap());
        // A chunk is never mistaken for a control message.
        assert!(ToWorker::decode(&variant).is_err());
    }
    for cut in 0..body.len() {
        assert!(decode_run(&body[..cut]).map_or(true, |r| r.is_none() || cut == body.len()));
    }
    assert!(
        decode_run(&ToWorker::Clear.encode().unwrap()[4..])
            .unwrap()
            .is_none()
    );

    let mut out = Vec::new();
    append_done(&mut out, &[4, 5]).unwrap();
    assert_eq!(out, FromWorker::Done(vec![4, 5]).encode().unwrap());
    let busy = FromWorker::Busy.encode().unwrap();
    out.extend_from_slice(&busy);
    assert!(holds_frame(&out));
    assert!(!holds_frame(&out[..6]));
    let mut r = &out[..];
    let (tag, rest) = read_tagged(&mut r, 1 << 20).unwrap().unwrap();
    assert_eq!(
        FromWorker::decode_parts(tag, &rest).unwrap(),
        FromWorker::Done(vec![4, 5])
    );
    let (tag, rest) = read_tagged(&mut r, 1 << 20).unwrap().unwrap();
    assert!(is_busy(tag, &rest));
    assert!(read_tagged(&mut r, 1 << 20).unwrap().is_none());
    assert!(read_tagged(&mut &[0u8, 0, 0, 0][..], 10).is_err());
    assert!(read_tagged(&mut &u32::MAX.to_le_bytes()[..], 10).is_err());
}

#[test]
fn frames_are_taken_from_received_bytes_only_when_whole() {
    let first = FromWorker::Forked {
        spawn_id: 3,
        pid: 9,
    }
    .encode()
    .unwrap();
    let second = FromWorker::Busy.encode().unwrap();
    let all = [first.clone(), second.clone()].concat();
    let mut buf = Vec::new();
    for (n, byte) in all.iter().enumerate() {
        buf.push(*byte);
        let taken = take_frame(&mut buf, 1 << 20).unwrap();
        if n + 1 == first.len() {
            assert_eq!(taken.as_deref(), Some(&first[4..]));
            assert!(buf.is_empty());
        } else if n + 1 == all.len() {
            assert_eq!(taken.as_deref(), Some(&second[4..]));
        } else {
            assert_eq!(taken, None, "after {} bytes", n + 1);
        }
    }
    assert!(buf.is_empty());
    // A length beyond the limit is an error before the body arrives.
    let mut huge = u32::MAX.to_le_bytes().to_vec();
    assert!(take_frame(&mut huge, 1 << 20).is_err());
}

#[test]
fn oversized_frames_are_refused_before_allocating() {
    let frame = (u32::MAX).to_le_bytes();
    let err = read_frame(&mut &frame[..], 1024).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn a_run_written_in_pieces_is_the_encoded_run() {
    use std::io::Read;
    let big = vec![7u8; DIRECT_ITEM + 3];
    let items: Items = [&b"a"[..], &big, b"", &big[..DIRECT_ITEM], b"z"]
        .into_iter()
        .collect();
    let load = ToWorker::Clear.encode().unwrap();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let expected = [load.clone(), encode_run(9, &items, AfterRun::Spin).unwrap()].concat();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0; expected.len()];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got, expected);
    });
    write_run(&a, load, 9, &items, AfterRun::Spin).unwrap();
    reader.join().unwrap();
}

#[test]
fn buffered_results_split_off_up_to_the_first_other_frame() {
    let mut buf = Vec::new();
    append_done(&mut buf, b"one").unwrap();
    append_done(&mut buf, b"").unwrap();
    append_done(&mut buf, b"three").unwrap();
    let busy_at = buf.len();
    buf.extend_from_slice(&FromWorker::Busy.encode().unwrap());
    append_done(&mut buf, b"after").unwrap();
    let mut seen = Vec::new();
    let (count, used) = split_done_frames(&buf, 10, 1 << 20, |r| seen.push(r.to_vec()));
    assert_eq!((count, used), (3, busy_at));
    assert_eq!(seen, [b"one".to_vec(), vec![], b"three".to_vec()]);
    // At most `max`, and never a partial frame.
    let (count, used) = split_done_frames(&buf, 2, 1 << 20, |_| {});
    assert_eq!((count, used), (2, 4 + 4 + 4 + 1));
    for cut in 0..9 {
        let (count, _) = split_done_frames(&buf[..cut], 10, 1 << 20, |_| {});
        assert_eq!(count, usize::from(cut == 8), "cut at {cut}");
    }
    // Empty and oversized frames are left for the checked path.
    assert_eq!(
        split_done_frames(&[0, 0, 0, 0, 1], 10, 1 << 20, |_| {}),
        (0, 0)
    );
    let huge = [0xff, 0xff, 0xff, 0x7f, from_worker::DONE];
    assert_eq!(split_done_frames(&huge, 10, 16, |_| {}), (0, 0));
}

#[test]
fn truncated_and_hostile_bodies_are_errors() {
    let run = encode_run(1, &[[1u8, 2, 3]].into_iter().collect(), AfterRun::Wait).unwrap();
    let body = &run[4..];
    for cut in 1..body.len() {
        assert!(decode_run(&body[..cut]).is_err());
    }
    let load = ToWorker::Load {
        key: 1,
        func: func(),
    }
    .encode()
    .unwrap();
    let body = &load[4..];
    for cut in 0..body.len() {
        assert!(ToWorker::decode(&body[..cut]).is_err());
    }
    // A run frame claiming a huge item count is refused without allocating.
    let mut hostile = vec![to_worker::RUN];
    hostile.extend_from_slice(&1u64.to_le_bytes());
    hostile.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(decode_run(&hostile).is_err());
    assert!(read_frame(&mut &[][..], 10).unwrap().is_none());
    assert!(read_frame(&mut &[1u8, 0][..], 10).is_err());
}

#[test]
fn a_body_buffer_grows_with_the_bytes_that_arrive_not_with_the_claim() {
    // 64 MiB claimed (within the default limit), ten bytes sent.
    let mut stream = ((64u32 << 20) + 1).to_le_bytes().to_vec();
    stream.push(to_worker::RUN);
    stream.extend_from_slice(&[7; 10]);
    let err = read_frame(&mut &stream[..], 64 << 20).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    let (tag, len) = read_head(&mut &stream[..], 64 << 20).unwrap().unwrap();
    assert_eq!((tag, len), (to_worker::RUN, 64 << 20));
    let mut out = Vec::new();
    let err = read_body_into(&mut &stream[5..], len, &mut out).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert!(out.capacity() <= 64 << 10, "{}", out.capacity());
    // A whole frame still reads whole, past the first buffer's size.
    let body = vec![3u8; 200 << 10];
    let mut stream = (body.len() as u32).to_le_bytes().to_vec();
    stream.extend_from_slice(&body);
    assert_eq!(
        read_frame(&mut &stream[..], 1 << 20).unwrap().unwrap(),
        body
    );
}

#[test]
fn any_byte_stream_reads_as_frames_or_errors() {
    let mut stream = ToWorker::Clear.encode().unwrap();
    stream.extend_from_slice(
        &encode_run(1, &[[1u8, 2]].into_iter().collect(), AfterRun::Wait).unwrap(),
    );
    append_done(&mut stream, b"ok").unwrap();
    assert_eq!(read_stream(&stream, 1 << 20), 3);
    for cut in 0..stream.len() {
        read_stream(&stream[..cut], 1 << 20);
    }
}
