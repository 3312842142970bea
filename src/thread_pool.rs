//! The threaded browser build's rayon pool (`initThreadPool(n)`), after wasm-bindgen-rayon 1.3
//! with one change: the calling thread (the page's compute worker, which owns the `Engine`) is
//! the pool's thread 0, and only n − 1 Web Workers are spawned. flex's parallel loops then run
//! on the thread that asked for them, and a sleeping worker steals what it can: a small operation
//! finishes before anyone wakes. With wasm-bindgen-rayon's pool, every parallel loop was handed
//! to a sleeping worker while the compute thread slept, two wake-ups per operation, which made
//! EfficientNet-Lite0 ~1.6× slower on the threaded build than on one thread. (rayon's
//! `use_current_thread`; wasm-bindgen-rayon has no way to ask for it.)

use crossbeam_channel::{bounded, Receiver, Sender};
use js_sys::{JsString, Promise};
use rayon::{ThreadBuilder, ThreadPoolBuilder};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/thread_pool.js")]
extern "C" {
    #[wasm_bindgen(js_name = startWorkers)]
    fn start_workers(module: JsValue, memory: JsValue, builder: PoolBuilder) -> Promise;
}

/// What the JS side needs to start the workers, then the pool (`build`) once they wait.
#[wasm_bindgen]
pub struct PoolBuilder {
    threads: usize,
    sender: Sender<ThreadBuilder>,
    receiver: Receiver<ThreadBuilder>,
}

#[wasm_bindgen]
impl PoolBuilder {
    /// Web Workers to spawn: every thread of the pool but the caller.
    pub fn workers(&self) -> usize {
        self.threads - 1
    }

    /// The address each worker receives its rayon thread from (`startWorker`).
    pub fn receiver(&self) -> *const Receiver<ThreadBuilder> {
        &self.receiver
    }

    /// This module's JS glue, which each worker imports.
    #[wasm_bindgen(js_name = mainJS)]
    pub fn main_js(&self) -> JsString {
        #[wasm_bindgen]
        extern "C" {
            #[wasm_bindgen(thread_local_v2, js_namespace = ["import", "meta"], js_name = url)]
            static URL: JsString;
        }
        URL.with(Clone::clone)
    }

    /// The global pool: the calling thread as thread 0, the waiting workers as the rest. Called
    /// by `startWorkers` once every worker waits on the channel.
    pub fn build(&mut self) -> Result<(), JsError> {
        let sender = self.sender.clone();
        ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .use_current_thread()
            .spawn_handler(move |thread| sender.send(thread).map_err(|_| std::io::Error::other("no worker is waiting for a thread")))
            .build_global()
            .map_err(|e| JsError::new(&format!("the thread pool did not start: {e}")))
    }
}

/// Starts a pool of `threads` threads in all (this one included); resolves when it runs.
#[wasm_bindgen(js_name = initThreadPool)]
pub fn init_thread_pool(threads: usize) -> Promise {
    let threads = threads.max(1);
    let (sender, receiver) = bounded(threads - 1);
    start_workers(wasm_bindgen::module(), wasm_bindgen::memory(), PoolBuilder { threads, sender, receiver })
}

/// A spawned worker's life: wait for its rayon thread, then run rayon's loop.
#[wasm_bindgen(js_name = startWorker)]
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn start_worker(receiver: *const Receiver<ThreadBuilder>)
where
    Receiver<ThreadBuilder>: Sync,
{
    // SAFETY: the address comes from `PoolBuilder::receiver`; the builder lives (held by
    // `startWorkers`) until `build` has handed every worker its thread.
    let receiver = unsafe { &*receiver };
    if let Ok(thread) = receiver.recv() {
        thread.run();
    }
}
