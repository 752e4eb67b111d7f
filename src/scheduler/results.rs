//! What the scheduler does with results: a run's start records the project's
//! revision; its end takes the run's live counter, reads its JUnit file (then
//! removes it) and stores the merged results in the transaction that ends the
//! run (`end_run_with`). docs/results.md says how.

use super::Scheduler;
use crate::domain::{RunId, RunStatus};
use crate::error::AppError;
use crate::results::args::{junit_path, wants_junit};
use crate::results::merge::{final_results, Junit};
use crate::results::{revision, FinalResults, LiveResults, Summary, TestResult};
use crate::store::{results as rows, StoreError};
use std::path::PathBuf;

impl Scheduler {
    /// Run `id`'s results as its output counted them (its live counter is
    /// taken): for a run that ends without a JUnit file to read.
    pub fn live_results(&self, id: RunId) -> FinalResults {
        final_results(&self.live.take(id), Junit::Stopped)
    }

    /// The table of live counters (the log writer feeds it; the ticker reads it).
    pub fn live(&self) -> &LiveResults {
        &self.live
    }

    /// The JUnit file of an embedded run, if the command writes one.
    pub(crate) fn junit_file(&self, id: RunId) -> Option<PathBuf> {
        wants_junit(&self.config.command).then(|| junit_path(&self.config.data_dir, id))
    }

    /// Records the project's git revision as run `id` starts.
    pub(crate) fn record_revision(&self, id: RunId) {
        let rev = revision::of(&self.config.project_dir);
        let res = self.store.conn().and_then(|c| rows::set_revision(&c, id, rev.as_ref()));
        if let Err(e) = res {
            tracing::warn!(run_id = id, error = %e, "could not store the run's revision");
        }
    }

    /// An embedded run's results at its end: its live words, and its JUnit
    /// file unless it was stopped; the file is removed.
    pub(crate) fn local_results(&self, id: RunId, status: RunStatus) -> FinalResults {
        let live = self.live.take(id);
        let Some(file) = self.junit_file(id) else {
            return final_results(&live, Junit::NotAsked);
        };
        let junit = match status {
            RunStatus::Succeeded | RunStatus::Failed => Junit::Read(crate::results::junit::read(&file)),
            _ => Junit::Stopped,
        };
        if let Err(e) = std::fs::remove_file(&file) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(run_id = id, file = %file.display(), error = %e, "could not remove the JUnit file");
            }
        }
        let results = final_results(&live, junit);
        if let Some(note) = &results.note {
            tracing::info!(run_id = id, note = %note, "run kept its live counts");
        }
        results
    }

    /// A run that was stopped before it could end by itself keeps what its
    /// output said (its counts stay live, its outcome null).
    pub(super) fn keep_stopped_results(&self, id: RunId, results: &FinalResults) -> Result<(), StoreError> {
        if results.tests.is_empty() {
            return Ok(());
        }
        let mut conn = self.store.conn()?;
        let tx = conn.transaction()?;
        if rows::has_final_summary(&tx, id)? {
            return Ok(());
        }
        rows::store_final(&tx, id, results, None)?;
        Ok(tx.commit()?)
    }

    /// A remote worker's batch of result rows `from…`; a batch past the
    /// rows stored is refused (`results_gap` with the next row wanted).
    pub(super) fn store_result_rows(&self, id: RunId, from: u64, tests: &[TestResult]) -> Result<(), AppError> {
        let mut conn = self.store.conn()?;
        let tx = conn.transaction()?;
        let stored = rows::count(&tx, id)?;
        if from > stored {
            return Err(AppError::ResultsGap { next: stored });
        }
        rows::insert_rows(&tx, id, from, tests)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// A remote run's results at its end: the rows its worker sent (all of
    /// `total` must be stored), or, from a worker that sends none, the
    /// server's own live counts.
    pub(super) fn remote_results(
        &self,
        id: RunId,
        total: Option<u64>,
        note: Option<String>,
    ) -> Result<FinalResults, AppError> {
        let Some(total) = total else {
            return Ok(self.live_results(id));
        };
        let tests = rows::list(&*self.store.conn()?, id, None)?;
        if (tests.len() as u64) < total {
            return Err(AppError::ResultsGap {
                next: tests.len() as u64,
            });
        }
        self.live.take(id);
        Ok(FinalResults {
            summary: Summary::of(tests.iter().map(|t| t.outcome), note.is_none()),
            tests: Vec::new(),
            note,
            rows_stored: true,
        })
    }
}
