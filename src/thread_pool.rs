//! The threaded browser build's rayon pool (`initThreadPool(n)`), after wasm-bindgen-rayon 1.3
//! with two changes:
//! - the calling thread (the page's compute worker, which owns the `Engine`) is the pool's
//!   thread 0, and only n − 1 Web Workers are spawned. flex's parallel loops then run on the
//!   thread that asked for them, and a sleeping worker steals what it can: a small operation
//!   finishes before anyone wakes. With wasm-bindgen-rayon's pool, every parallel loop was handed
//!   to a sleeping worker while the compute thread slept, two wake-ups per operation, which made
//!   EfficientNet-Lite0 ~1.6× slower on the threaded build than on one thread;
//! - the pool runs at once, before its workers do. Chromium takes 0.1–0.4 s to start a worker's
//!   instance of the module; meanwhile thread 0 computes alone (rayon's work stealing needs no
//!   one else: a job nobody stole is run by the thread that queued it), and each worker joins
//!   when it is up. wasm-bindgen-rayon (and rayon's `build_global`) wait for every worker, which
//!   was a quarter of the page's first look.

use std::sync::OnceLock;

use crossbeam_channel::{bounded, Receiver};
use js_sys::{JsString, Promise};
use rayon::{ThreadBuilder, ThreadPool, ThreadPoolBuilder};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/thread_pool.js")]
extern "C" {
    #[wasm_bindgen(js_name = startWorkers)]
    fn start_workers(module: JsValue, memory: JsValue, workers: usize, receiver: *const Receiver<ThreadBuilder>, main_js: JsString) -> Promise;
}

/// The pool, never dropped (dropping it would stop its threads). Not rayon's global pool: that
/// one's `build_global` waits until every thread runs. Every parallel loop flex runs starts on
/// thread 0, so it runs on this pool all the same.
static POOL: OnceLock<ThreadPool> = OnceLock::new();

/// Where each worker receives its rayon thread (`startWorker`); lives as long as the module.
static THREADS: OnceLock<Receiver<ThreadBuilder>> = OnceLock::new();

/// Starts a pool of `threads` threads in all, this one included, and returns at once: this
/// thread computes from now on, alone until the Web Workers join. The promise resolves once the
/// workers are spawned (not started).
#[wasm_bindgen(js_name = initThreadPool)]
pub fn init_thread_pool(threads: usize) -> Result<Promise, JsError> {
    let threads = threads.max(1);
    // Room for every worker's thread: rayon hands them all out before any worker has started.
    let (sender, receiver) = bounded(threads - 1);
    let pool = ThreadPoolBuilder::new()
        .num_threads(threads)
        .use_current_thread()
        .spawn_handler(move |thread| sender.send(thread).map_err(|_| std::io::Error::other("the pool's workers are gone")))
        .build()
        .map_err(|e| JsError::new(&format!("the thread pool did not start: {e}")))?;
    if POOL.set(pool).is_err() || THREADS.set(receiver).is_err() {
        return Err(JsError::new("the thread pool is already running"));
    }
    let receiver: *const Receiver<ThreadBuilder> = THREADS.get().expect("set above");
    Ok(start_workers(wasm_bindgen::module(), wasm_bindgen::memory(), threads - 1, receiver, main_js()))
}

/// This module's JS glue, which each worker imports.
fn main_js() -> JsString {
    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(thread_local_v2, js_namespace = ["import", "meta"], js_name = url)]
        static URL: JsString;
    }
    URL.with(Clone::clone)
}

/// A spawned worker's life: take one of the pool's threads, then run rayon's loop.
#[wasm_bindgen(js_name = startWorker)]
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn start_worker(receiver: *const Receiver<ThreadBuilder>)
where
    Receiver<ThreadBuilder>: Sync,
{
    // SAFETY: the address is `THREADS`'s, a static that is set once and never moved or dropped.
    let receiver = unsafe { &*receiver };
    if let Ok(thread) = receiver.try_recv() {
        thread.run();
    }
}
