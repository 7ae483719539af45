//! The runtime pinlog's shards run on must never park an executor that has runnable work.
//!
//! glommio 0.9.0 did: when the latency ring held a completion that woke no task (the preempt timer, the eventfd
//! poll), `run_task_queues` saw `need_preempt()` before running any queue, reported "nothing ran", and the executor
//! parked with runnable tasks until the next I/O or timer event, which in an idle shard or a test may never come.
//! `third_party/glommio` carries the fix (see its PINLOG.md); the first test hangs without it. The second runs the
//! handshake by which another thread wakes a sleeping executor, which the copy also changes.

use glommio::LocalExecutorBuilder;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

#[test]
fn an_executor_preempted_before_any_queue_ran_still_runs_its_tasks() {
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        // A 1 ns preempt timer has always fired by the time the executor looks at its queues.
        let executor = LocalExecutorBuilder::default()
            .preempt_timer(Duration::from_nanos(1))
            .make()
            .expect("an executor");
        for _ in 0..1_000 {
            executor.run(async {});
        }
        done.send(()).expect("the test is waiting");
    });
    finished.recv_timeout(Duration::from_secs(20)).expect(
        "1,000 empty runs finish in well under 20 s unless the executor parks with runnable work",
    );
    worker.join().expect("the worker thread ends");
}

/// Each message from one executor to the other arrives while the receiver is parked or about to park (it has nothing
/// else to do), so every round trip goes through the sleep/wake handshake of `third_party/glommio` twice (PINLOG.md,
/// "The sleep handshake"). A lost wake-up leaves both executors parked for good, and the deadline fails the test.
/// The race a missing fence opens is a few instructions wide: three runs with the sleeper's fence taken out still
/// passed, so this test shows the handshake works, and the fences' pairing is what makes it correct.
#[test]
fn an_executor_parked_on_a_cross_thread_channel_wakes_for_every_message() {
    use glommio::channels::shared_channel;

    const ROUND_TRIPS: u32 = 20_000;
    let (ping_tx, ping_rx) = shared_channel::new_bounded::<u32>(1);
    let (pong_tx, pong_rx) = shared_channel::new_bounded::<u32>(1);
    let (done, finished) = mpsc::channel();
    let echo = thread::spawn(move || {
        LocalExecutorBuilder::default()
            .make()
            .expect("an executor")
            .run(async move {
                let (rx, tx) = (ping_rx.connect().await, pong_tx.connect().await);
                while let Some(n) = rx.recv().await {
                    tx.send(n).await.expect("the pinger is listening");
                }
            });
    });
    let pinger = thread::spawn(move || {
        let answered = LocalExecutorBuilder::default()
            .make()
            .expect("an executor")
            .run(async move {
                let (tx, rx) = (ping_tx.connect().await, pong_rx.connect().await);
                let mut answered = 0;
                for n in 0..ROUND_TRIPS {
                    tx.send(n).await.expect("the echo is listening");
                    if rx.recv().await == Some(n) {
                        answered += 1;
                    }
                }
                answered
            });
        done.send(answered).expect("the test is waiting");
    });
    let answered = finished.recv_timeout(Duration::from_secs(20)).expect(
        "20,000 round trips between two executors end in well under 20 s unless a wake-up is lost",
    );
    assert_eq!(answered, ROUND_TRIPS, "every ping is echoed in order");
    pinger.join().expect("the pinger thread ends");
    echo.join().expect("the echo thread ends");
}
