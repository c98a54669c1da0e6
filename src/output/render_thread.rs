//! The thread that renders pages and API answers for people and rollout
//! controllers: the status page, a check's page, `/api/v1/checks` and the
//! gate. Each copies and formats the whole status (10,000 checks take
//! tens of milliseconds), so they run one at a time on a thread of their
//! own at a lower CPU priority than the workers that run the checks: a
//! flood of page requests then takes the CPU only when the checks leave it
//! idle, instead of sharing it equally with them and making runs late.
//! `/metrics` is not rendered here: a scrape has a deadline of its own.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, Sender};
use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// How much lower than the workers the render thread runs: nice 10 weighs
/// about a tenth of nice 0 when both want the CPU (the kernel's weights).
const NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// One render at a time: a request waiting for its turn holds no job in
/// the thread's queue, so one that gives up (the router's timeout) is
/// never rendered.
static TURN: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

static JOBS: LazyLock<Option<Sender<Job>>> = LazyLock::new(start);

/// Starts the render thread; None if the system refuses a thread.
fn start() -> Option<Sender<Job>> {
    let (jobs, queue) = channel::<Job>();
    std::thread::Builder::new()
        .name("vouch-render".to_string())
        .spawn(move || {
            lower_priority();
            for job in queue {
                // A render that panics answers 500 (its sender is dropped)
                // and leaves the thread serving; the panic hook logs it.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            }
        })
        .ok()?;
    Some(jobs)
}

/// Lowers this thread's priority (on Linux a thread's nice value is its
/// own). A refusal only leaves it at the workers' priority.
fn lower_priority() {
    let thread = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(thread)).unwrap_or(0);
    let _ = rustix::process::setpriority_process(Some(thread), now + NICENESS);
}

/// Runs `render` on the render thread, after the renders before it.
pub async fn render<F>(render: F) -> Response
where
    F: FnOnce() -> Response + Send + 'static,
{
    let Ok(_turn) = TURN.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = answer.send(render());
    });
    let sent = JOBS.as_ref().is_some_and(|jobs| jobs.send(job).is_ok());
    if !sent {
        return (StatusCode::SERVICE_UNAVAILABLE, "cannot render\n").into_response();
    }
    match answered.await {
        Ok(response) => response,
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn niceness_of_this_thread() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    #[tokio::test]
    async fn renders_run_on_one_lower_priority_thread_and_survive_a_panic() {
        let where_and_how = || {
            render(|| {
                let name = std::thread::current().name().map(str::to_string);
                let nice = niceness_of_this_thread();
                (StatusCode::OK, format!("{name:?} {nice}")).into_response()
            })
        };
        let first = where_and_how().await;
        assert_eq!(first.status(), StatusCode::OK);
        let body = axum::body::to_bytes(first.into_body(), 1024).await.unwrap();
        // A new thread starts at its creator's niceness: a test thread's.
        let here = niceness_of_this_thread();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            format!("Some(\"vouch-render\") {}", (here + NICENESS).min(19))
        );
        let panicked = render(|| panic!("a render that panics")).await;
        assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(where_and_how().await.status(), StatusCode::OK);
    }
}
