//! The runtime pinlog's shards run on must never park an executor that has runnable work.
//!
//! glommio 0.9.0 did: when the latency ring held a completion that woke no task (the preempt timer, the eventfd
//! poll), `run_task_queues` saw `need_preempt()` before running any queue, reported "nothing ran", and the executor
//! parked with runnable tasks until the next I/O or timer event, which in an idle shard or a test may never come.
//! `third_party/glommio` carries the fix (see its PINLOG.md); this test hangs without it.

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
