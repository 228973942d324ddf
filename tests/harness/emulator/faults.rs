//! Faults a test queues for a robot (errors, HTML pages, dropped connections, held or lost
//! answers) and the global outage: each does what it says, once, in order.

use std::time::{Duration, Instant};

use crate::support::emulator::{Emulator, Fault, RobotSpec};

use super::{Reply, agent, post, text, try_post};

/// What a client sees for one fault.
#[derive(Debug, PartialEq)]
enum Seen {
    Answer { status: u16, errcode: Option<i64> },
    ConnectionError,
}

fn seen(result: Result<Reply, ureq::Error>) -> Seen {
    match result {
        Ok(reply) => Seen::Answer {
            status: reply.status,
            errcode: reply.errcode(),
        },
        Err(_) => Seen::ConnectionError,
    }
}

#[test]
fn each_fault_behaves_as_described() {
    let answer = |status, errcode| Seen::Answer { status, errcode };
    let cases = [
        (Fault::Http500, answer(500, None), false),
        (
            Fault::Errcode(-1, "system busy".into()),
            answer(200, Some(-1)),
            false,
        ),
        (
            Fault::Errcode(400102, "robot disabled".into()),
            answer(200, Some(400102)),
            false,
        ),
        (Fault::Drop, Seen::ConnectionError, false),
        (Fault::Html, answer(200, None), false),
        (Fault::Firewall, answer(200, None), false),
        (
            Fault::Delay(Duration::from_millis(300)),
            answer(200, Some(0)),
            true,
        ),
        (Fault::LoseAnswer, Seen::ConnectionError, true),
    ];
    let emu = Emulator::start(vec![RobotSpec::new("tok"), RobotSpec::new("other")]);
    let url = emu.webhook("tok");
    let body = text("x").to_string();
    for (fault, expected, posted) in cases {
        emu.push_fault("tok", fault.clone());
        // Faults belong to one robot.
        assert_eq!(post(&emu.webhook("other"), &text("o")).errcode(), Some(0));

        let before = emu.posts().len();
        let started = Instant::now();
        let result = try_post(&url, "application/json", &body);
        let elapsed = started.elapsed();
        if let Ok(reply) = &result {
            match &fault {
                Fault::Html => assert!(reply.body.starts_with("<html>"), "{reply:?}"),
                Fault::Firewall => assert_eq!(reply.json()["status"], 1111),
                Fault::Errcode(_, msg) => assert_eq!(&reply.errmsg(), msg),
                _ => {}
            }
        }
        assert_eq!(seen(result), expected, "{fault:?}");
        assert_eq!(
            emu.posts().len() - before,
            posted as usize,
            "{fault:?} posted"
        );
        if let Fault::Delay(d) = fault {
            assert!(elapsed >= d, "{elapsed:?}");
        }
        assert_eq!(emu.requests().last().unwrap().fault, Some(fault.clone()));

        // One fault per request: the next request is normal again.
        let next = try_post(&url, "application/json", &body).unwrap();
        assert_eq!(next.errcode(), Some(0), "after {fault:?}");
    }
}

#[test]
fn faults_are_consumed_in_order() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    emu.push_fault("tok", Fault::Errcode(-1, "system busy".into()));
    emu.push_fault("tok", Fault::Http500);
    emu.push_fault("tok", Fault::Errcode(130101, "send too fast".into()));
    let url = emu.webhook("tok");
    let got: Vec<Seen> = (0..4)
        .map(|_| seen(try_post(&url, "application/json", &text("x").to_string())))
        .collect();
    let answer = |status, errcode| Seen::Answer { status, errcode };
    assert_eq!(
        got,
        [
            answer(200, Some(-1)),
            answer(500, None),
            answer(200, Some(130101)),
            answer(200, Some(0))
        ]
    );
}

#[test]
fn a_delay_past_the_client_timeout_still_posts() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    // Held for a day: the client's timeout comes first however loaded the machine is (the
    // server drops the held answer when the emulator is dropped).
    emu.push_fault("tok", Fault::Delay(Duration::from_secs(86_400)));
    let result = agent(Duration::from_millis(200))
        .post(&emu.webhook("tok"))
        .header("Content-Type", "application/json")
        .send(text("slow").to_string());
    assert!(result.is_err(), "the client times out");
    assert_eq!(emu.posts().len(), 1);
}

#[test]
fn outage_answers_503_and_keeps_faults() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    emu.push_fault("tok", Fault::Errcode(-1, "system busy".into()));
    emu.set_outage(true);
    for url in [emu.webhook("tok"), emu.webhook("nope")] {
        let reply = try_post(&url, "application/json", &text("x").to_string()).unwrap();
        assert_eq!((reply.status, reply.errcode()), (503, None));
    }
    emu.set_outage(false);
    assert_eq!(post(&emu.webhook("tok"), &text("x")).errcode(), Some(-1));
    assert_eq!(post(&emu.webhook("tok"), &text("x")).errcode(), Some(0));
    assert_eq!(emu.posts().len(), 1);
    assert_eq!(emu.requests().len(), 4);
}

#[test]
fn drop_and_lose_answer_send_no_bytes_at_all() {
    use std::io::{Read, Write};
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    let body = text("x").to_string();
    let request = format!(
        "POST /robot/send?access_token=tok HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for fault in [Fault::Drop, Fault::LoseAnswer] {
        emu.push_fault("tok", fault.clone());
        let mut stream =
            std::net::TcpStream::connect(emu.base_url().trim_start_matches("http://")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        // A clean close reads 0 bytes; a reset is an error. Either way: no answer.
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.is_empty(),
            "{fault:?}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
}
