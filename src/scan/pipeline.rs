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
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// The reader's end of the channel.
pub struct Sender<'a, T> {
    tx: &'a SyncSender<Result<T>>,
}

impl<T> Sender<'_, T> {
    /// Sends one item; an error only when the consumer has stopped listening (after an
    /// error of its own, which it returns).
    pub fn send(&self, item: T) -> Result<()> {
        self.tx
            .send(Ok(item))
            .map_err(|_| Error::Internal("the consumer stopped listening".into()))
    }
}

/// Runs `read` on a reader thread feeding a channel of `capacity` items, and `consume` on
/// this thread with the channel's receiving end. `consume` must return the first `Err` it
/// receives (the reader's error). Returns `read`'s result once both have finished.
pub fn with_reader<T: Send, R: Send>(
    capacity: usize,
    read: impl FnOnce(&Sender<T>) -> Result<R> + Send,
    consume: impl FnOnce(Receiver<Result<T>>) -> Result<()>,
) -> Result<R> {
    let (tx, rx) = sync_channel::<Result<T>>(capacity);
    std::thread::scope(|s| {
        let reader = s.spawn(move || match read(&Sender { tx: &tx }) {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = tx.send(Err(e));
                Err(Error::Internal("the reader stopped after an error".into()))
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
}
