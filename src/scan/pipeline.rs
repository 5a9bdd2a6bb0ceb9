//! The reader-thread pipeline every streaming command runs: one thread reads (walks,
//! decodes, cuts and tokenises) and sends items through a bounded channel while the calling
//! thread runs the model on what arrives. Memory holds the channel, not the collection.
//!
//! A reader error travels to the consumer as it is, so its kind (an input error, exit 3)
//! survives to `main`; a consumer that stops early makes the reader's next send fail, which
//! ends the reader.

use crate::error::{Error, Result};
use crate::input::{read_collection, CollectOptions, Event, ReadOptions};
use crate::record::PassageRecord;
use crate::scorer::{Prepared, Scorer};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

/// The reader's end of the channel.
pub struct Sender<'a, T> {
    tx: &'a SyncSender<Result<T>>,
    /// Time spent waiting for room in the channel (the model was the bottleneck).
    waited: Cell<Duration>,
}

impl<T> Sender<'_, T> {
    /// Sends one item; an error only when the consumer has stopped listening (after an
    /// error of its own, which it returns).
    pub fn send(&self, item: T) -> Result<()> {
        let t = Instant::now();
        let r = self
            .tx
            .send(Ok(item))
            .map_err(|_| Error::Internal("the consumer stopped listening".into()));
        self.waited.set(self.waited.get() + t.elapsed());
        r
    }
}

/// How the reader thread spent its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ReaderTime {
    /// Reading, decoding, cutting and tokenising: what the model would wait for if the
    /// reader were the bottleneck.
    pub busy_seconds: f64,
    /// Waiting for the model to take what was read.
    pub waiting_seconds: f64,
}

/// Runs `read` on a reader thread feeding a channel of `capacity` items, and `consume` on
/// this thread with the channel's receiving end. `consume` must return the first `Err` it
/// receives (the reader's error). Returns `read`'s result and the reader's time once both
/// have finished.
pub fn with_reader<T: Send, R: Send>(
    capacity: usize,
    read: impl FnOnce(&Sender<T>) -> Result<R> + Send,
    consume: impl FnOnce(Receiver<Result<T>>) -> Result<()>,
) -> Result<(R, ReaderTime)> {
    let (tx, rx) = sync_channel::<Result<T>>(capacity);
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let started = Instant::now();
            let sender = Sender {
                tx: &tx,
                waited: Cell::new(Duration::ZERO),
            };
            match read(&sender) {
                Ok(r) => {
                    let waiting = sender.waited.get().as_secs_f64();
                    let time = ReaderTime {
                        busy_seconds: (started.elapsed().as_secs_f64() - waiting).max(0.0),
                        waiting_seconds: waiting,
                    };
                    Ok((r, time))
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    Err(Error::Internal("the reader stopped after an error".into()))
                }
            }
        });
        consume(rx)?;
        reader
            .join()
            .map_err(|_| Error::Internal("the reader thread panicked".into()))?
    })
}

/// `score`'s pipeline: `inputs` read strictly (every file, hidden ones included; the first
/// problem is an error naming the file and line), each document one passage, tokenised on
/// the reader thread; results reach `sink` in input order.
pub fn score_inputs(
    scorer: &Scorer,
    inputs: &[PathBuf],
    read: &ReadOptions,
    sink: impl FnMut(PassageRecord) -> Result<()>,
) -> Result<()> {
    let opts = CollectOptions::strict(read.clone());
    with_reader::<Prepared, ()>(
        256,
        |tx| {
            read_collection(inputs, &opts, &|_| true, &mut |e| {
                if let Event::Segment { doc, text, .. } = e {
                    tx.send(scorer.prepare(doc.passage(doc.id.clone(), text))?)?;
                }
                Ok(())
            })
            .map(|_| ())
        },
        |rx| scorer.score_iter(rx.into_iter(), sink),
    )
    .map(|_| ())
}
