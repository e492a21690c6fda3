use super::*;

/// 2030-01-01T00:00:00Z.
const Y2030: Nanos = 1_893_456_000 * NANOS;

/// A server's reply to `req` saying the time is `t` (received and sent).
fn reply(req: &[u8], t: Nanos) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0] = (4 << 3) | 4;
    p[1] = 1;
    p[12..16].copy_from_slice(b"GPS\0");
    p[24..32].copy_from_slice(&req[40..48]);
    p[32..40].copy_from_slice(&to_ntp(t).to_be_bytes());
    p[40..48].copy_from_slice(&to_ntp(t).to_be_bytes());
    p
}

#[test]
fn timestamps_round_trip_across_the_2036_era_and_before_1970() {
    for t in [
        0,
        Y2030 + 123_456_789,
        // 2036-02-07T06:28:16Z: the NTP seconds wrap to 0.
        2_085_978_496 * NANOS,
        2_085_978_496 * NANOS + 500_000_000,
        // 2100.
        4_102_444_800 * NANOS,
        -NANOS,
    ] {
        // The fraction is 1/2^32 s: a round trip loses under a nanosecond.
        assert!((from_ntp(to_ntp(t)) - t).abs() <= 1, "{t}");
    }
    // Known values: the Unix epoch is 2208988800 s after 1900.
    assert_eq!(to_ntp(0), 2_208_988_800u64 << 32);
    assert_eq!(to_ntp(NANOS / 2) & 0xffff_ffff, 0x8000_0000);
    // Era 1: 2036-02-07T06:28:16Z is NTP second 0.
    assert_eq!(to_ntp(2_085_978_496 * NANOS), 0);
}

#[test]
fn request_is_a_v4_client_packet_carrying_its_time() {
    let p = request(Y2030);
    assert_eq!(p[0], 0b00_100_011, "LI 0, version 4, mode 3");
    assert!(p[1..40].iter().all(|&b| b == 0));
    assert_eq!(
        from_ntp(u64::from_be_bytes(p[40..48].try_into().unwrap())),
        Y2030
    );
}

#[test]
fn offset_and_delay_follow_rfc_4330() {
    // Clock 10 s behind; 100 ms each way; the server takes 1 ms.
    let t1 = Y2030;
    let r = Reply {
        receive: t1 + 10 * NANOS + 100_000_000,
        transmit: t1 + 10 * NANOS + 101_000_000,
        stratum: 2,
    };
    let t4 = t1 + 201_000_000;
    assert_eq!(offset(t1, &r, t4), 10 * NANOS);
    assert_eq!(seconds(offset(t1, &r, t4)), "+10.000 s");
    assert_eq!(seconds(-1_250_000_000), "-1.250 s");
    assert_eq!(rfc3339(Y2030), "2030-01-01T00:00:00Z");
}

#[test]
fn a_good_reply_is_read() {
    let t1 = now();
    let req = request(t1);
    let r = parse_reply(&reply(&req, Y2030), t1).unwrap();
    assert_eq!(r.stratum, 1);
    assert!((r.transmit - Y2030).abs() <= 1);
}

#[test]
fn bad_replies_are_refused_saying_why() {
    let t1 = now();
    let req = request(t1);
    let good = reply(&req, Y2030);
    let with = |f: &dyn Fn(&mut [u8; PACKET_LEN])| {
        let mut p = good;
        f(&mut p);
        parse_reply(&p, t1).unwrap_err().to_string()
    };
    assert_eq!(
        parse_reply(&good[..47], t1).unwrap_err().to_string(),
        "expected a 48-byte reply, found 47 bytes"
    );
    assert_eq!(
        with(&|p| p[0] = (4 << 3) | 3),
        "expected a server reply (mode 4, version 3 or 4), found mode 3 version 4"
    );
    assert!(with(&|p| {
        p[1] = 0;
        p[12..16].copy_from_slice(b"RATE");
    })
    .contains("kiss code \"RATE\""));
    assert!(with(&|p| p[0] |= 0b1100_0000).contains("not synchronized"));
    assert!(with(&|p| p[31] ^= 1).contains("originate timestamp is not our request's"));
    assert!(with(&|p| p[40..48].fill(0)).contains("transmit timestamp is zero"));
}

/// A server on the loopback that answers 2030: the query reads an offset
/// of (2030 - now) and the delay of the loopback.
#[test]
fn query_asks_a_server_over_udp() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let answer = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(n, PACKET_LEN);
        server.send_to(&reply(&buf[..n], Y2030), from).unwrap();
    });
    let before = now();
    let s = query(&addr.to_string(), Duration::from_secs(5)).unwrap();
    answer.join().unwrap();
    let expected = Y2030 - before;
    assert!(
        (s.offset - expected).abs() < NANOS,
        "offset {} expected about {}",
        seconds(s.offset),
        seconds(expected)
    );
    assert!(s.delay >= 0 && s.delay < NANOS, "{}", s.delay);
    assert_eq!(s.addr, addr);
}

#[test]
fn no_answer_is_a_timeout_naming_the_server() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let e = query(&addr.to_string(), Duration::from_millis(200)).unwrap_err();
    assert!(matches!(e, SntpError::Timeout { .. }), "{e}");
    assert_eq!(e.to_string(), format!("{addr}: no answer within 0.2 s"));
}

#[test]
fn backoff_doubles_from_two_seconds_up_to_the_interval() {
    let every = Duration::from_secs(60);
    let waits: Vec<u64> = (1..=7).map(|f| backoff(f, every).as_secs()).collect();
    assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(backoff(1000, every), every);
}
