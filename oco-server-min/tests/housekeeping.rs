//! Housekeeping passes through the server: Wake-on-LAN packets on a loopback socket, expiry and
//! purge applied to the store, and the status the admin API shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use oco_core::model::{
    ContainerId, JobContainer, JobState, MacAddress, MessageCode, Origin, Schedule,
};
use oco_core::store::testkit::{self, at};
use oco_core::store::{
    Change, FailingStore, JobFilter, MemoryStore, NewComputer, Page, Store, StoreError,
};
use oco_core::Settings;
use oco_server_min::clock::FixedClock;
use oco_server_min::housekeeping::run_once;
use oco_server_min::{AppState, Secrets, ServerOptions};

fn server(store: Arc<MemoryStore>, clock: Arc<FixedClock>) -> AppState {
    let secrets = Secrets {
        admin_token: "admin".into(),
        agent_key: "agent".into(),
        registration_key: None,
    };
    AppState::new(
        store,
        clock,
        Settings::default(),
        ServerOptions::default(),
        secrets,
    )
    .unwrap()
}

/// A container of `title` starting at `start`, ending at `end`, without Wake-on-LAN.
fn container(title: &str, start: i64, end: Option<i64>) -> JobContainer {
    let mut container = testkit::container(title);
    container.schedule = Schedule::new(at(start), end.map(at)).unwrap();
    container.wol.wake = false;
    container.wol.shutdown_after = false;
    container.wol.sent_at = None;
    container.created_at = at(start - 60);
    container
}

#[tokio::test]
async fn wake_packets_reach_the_configured_target() {
    let store = Arc::new(MemoryStore::new());
    let f = testkit::fixture(store.as_ref());
    let mac: MacAddress = "02:00:5e:10:20:30".parse().unwrap();
    let pc = store
        .create_computer(NewComputer {
            macs: vec![mac],
            ..testkit::new_computer("sleeper")
        })
        .unwrap();
    let mut waking = container("waking", 100, None);
    waking.wol.wake = true;
    // The container under test, with a pending job on the computer with the MAC.
    let applied = testkit::apply(
        store.as_ref(),
        vec![Change::CreateContainer {
            container: waking,
            jobs: vec![testkit::job(
                Origin::Container(ContainerId(0)),
                pc.id,
                &f.packages[0],
                1,
            )],
        }],
    );
    let waking = applied.containers[0];

    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let target = receiver.local_addr().unwrap();
    let state = server(store.clone(), Arc::new(FixedClock::new(at(100))));

    let report = run_once(&state, &[target]).await.unwrap();
    assert_eq!(report.summary.wakes, 1);
    assert_eq!(report.packets_sent, 1);
    assert!(report.packet_errors.is_empty());

    let mut buf = [0u8; 512];
    let (len, _) = receiver.recv_from(&mut buf).unwrap();
    assert_eq!(len, 102);
    assert_eq!(&buf[..6], &[0xFF; 6]);
    for copy in buf[6..102].chunks(6) {
        assert_eq!(copy, &mac.0);
    }
    assert_eq!(buf[..len], mac.magic_packet());

    // Marked sent before the packets left: the next pass sends nothing.
    assert_eq!(store.container(waking).unwrap().wol.sent_at, Some(at(100)));
    let again = run_once(&state, &[target]).await.unwrap();
    assert_eq!((again.summary.wakes, again.packets_sent), (0, 0));
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(receiver.recv_from(&mut buf).is_err(), "a second packet");

    let status = state.housekeeping().snapshot();
    assert_eq!(status.runs, 2);
    assert_eq!(status.last_run, Some(at(100)));
    assert_eq!(status.last_error, None);
}

#[tokio::test]
async fn no_packet_before_the_start() {
    let store = Arc::new(MemoryStore::new());
    let f = testkit::fixture(store.as_ref());
    let mut later = container("later", 1_000, None);
    later.wol.wake = true;
    testkit::apply(
        store.as_ref(),
        vec![Change::CreateContainer {
            container: later,
            jobs: vec![testkit::job(
                Origin::Container(ContainerId(0)),
                f.computers[0].id,
                &f.packages[0],
                1,
            )],
        }],
    );
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = receiver.local_addr().unwrap();
    let state = server(store, Arc::new(FixedClock::new(at(999))));
    let report = run_once(&state, &[target]).await.unwrap();
    assert_eq!((report.summary.wakes, report.packets_sent), (0, 0));
}

#[tokio::test]
async fn a_pass_expires_ended_containers_and_purges_old_finished_ones() {
    let store = Arc::new(MemoryStore::new());
    let f = testkit::fixture(store.as_ref());
    let pc = f.computers[0].id;
    let job = |state: JobState, finished: Option<i64>| {
        let mut job = testkit::job(Origin::Container(ContainerId(0)), pc, &f.packages[0], 1);
        job.state = state;
        job.finished = finished.map(at);
        job
    };
    let create = |container: JobContainer, jobs| {
        testkit::apply(
            store.as_ref(),
            vec![Change::CreateContainer { container, jobs }],
        )
        .containers[0]
    };
    // Ended at 1 000 with a job never started: it expires.
    let ended = create(
        container("ended", 0, Some(1_000)),
        vec![job(JobState::Waiting, None)],
    );
    // Succeeded more than 4 hours before now: purged.
    let old = create(
        container("old", 0, None),
        vec![job(JobState::Succeeded, Some(500))],
    );
    // Succeeded an hour ago: kept.
    let recent = create(
        container("recent", 0, None),
        vec![job(JobState::Succeeded, Some(20_000 - 3_600))],
    );
    // Still running: untouched.
    let running = create(
        container("running", 0, None),
        vec![job(JobState::Waiting, None)],
    );

    let clock = Arc::new(FixedClock::new(at(20_000)));
    let state = server(store.clone(), clock.clone());
    let report = run_once(&state, &[]).await.unwrap();
    assert_eq!(report.summary.expired, 1);
    assert_eq!(report.summary.purged, 1);
    assert_eq!(report.summary.wakes, 0);

    let jobs_of = |cid| {
        store
            .list_jobs(
                &JobFilter {
                    origin: Some(Origin::Container(cid)),
                    ..JobFilter::default()
                },
                Page::first(10),
            )
            .unwrap()
    };
    let expired = jobs_of(ended);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].state, JobState::Expired);
    assert_eq!(expired[0].message, Some(MessageCode::Expired));
    assert_eq!(expired[0].finished, Some(at(20_000)));
    assert!(matches!(
        store.container(old),
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.container(recent).is_ok());
    assert_eq!(jobs_of(running)[0].state, JobState::Waiting);

    let status = state.housekeeping().snapshot();
    assert_eq!(status.last_run, Some(at(20_000)));
    let summary = status.last_summary.unwrap();
    assert_eq!((summary.expired, summary.purged), (1, 1));

    // Two days later the expired container (status failed) is purged too, the recent one
    // (succeeded) long before.
    clock.set(at(20_000 + 2 * 86_400 + 1));
    let report = run_once(&state, &[]).await.unwrap();
    assert_eq!(report.summary.purged, 2);
    assert!(store.container(ended).is_err());
    assert!(store.container(recent).is_err());
    assert!(store.container(running).is_ok());
}

#[tokio::test]
async fn a_store_failure_is_recorded_in_the_status() {
    // Every store call after the server's start fails.
    let store = Arc::new(FailingStore::fail_from(MemoryStore::new(), u64::MAX));
    let state = AppState::new(
        store.clone(),
        Arc::new(FixedClock::new(at(0))),
        Settings::default(),
        ServerOptions::default(),
        Secrets {
            admin_token: "admin".into(),
            agent_key: "agent".into(),
            registration_key: None,
        },
    )
    .unwrap();
    store.restart(1);
    assert!(run_once(&state, &[]).await.is_err());
    let status = state.housekeeping().snapshot();
    assert_eq!(status.runs, 1);
    assert_eq!(status.last_summary, None);
    let error = status.last_error.unwrap();
    assert_eq!(error.at, at(0));
    assert!(error.message.starts_with("store: "), "{}", error.message);
}
