//! A deploy's journal, `state/apps/<app>/releases/<n>/journal.json`: the
//! planned steps (with the exact argv where there is one) and each step's
//! outcome, written atomically (temp file, fsync, rename) before the next
//! step starts. A deploy killed at any point leaves it behind; the next kata
//! command for the app reads it and finishes or undoes the deploy (see
//! [`crate::recovery`]).

use crate::paths::Paths;
use crate::plan::{ReleasePlan, Start};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::io;
use std::path::PathBuf;

/// Every step a deploy plans, in order (argv are added once known).
pub const STEPS: [Step; 9] = [
    Step::Prepare,
    Step::Build,
    Step::StartNew,
    Step::Gate,
    Step::SwitchCaddy,
    Step::RecordLive,
    Step::Drain,
    Step::RetireOld,
    Step::Cleanup,
];

/// The steps of a deploy, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Export the commit, read the spec, render and record the plan.
    Prepare,
    /// Runtime images and build steps.
    Build,
    /// Start the new containers (`compose up`, `stack deploy`).
    StartNew,
    /// Health gate of the new containers.
    Gate,
    /// Point Caddy at the new containers.
    SwitchCaddy,
    /// Record the new release live, the previous one superseded.
    RecordLive,
    /// Wait until Caddy has nothing in flight to the old containers.
    Drain,
    /// Stop (full grace period) and remove the old containers.
    RetireOld,
    /// Remove orphans and unused code volumes; prune old releases.
    Cleanup,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Build => "build",
            Step::StartNew => "start-new",
            Step::Gate => "gate",
            Step::SwitchCaddy => "switch-caddy",
            Step::RecordLive => "record-live",
            Step::Drain => "drain",
            Step::RetireOld => "retire-old",
            Step::Cleanup => "cleanup",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a step is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "error")]
pub enum State {
    Planned,
    /// Begun and not known to have ended: the process may have died in it.
    Started,
    Done,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub step: Step,
    /// The commands the step runs, each an exact argv (program first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<Vec<String>>,
    #[serde(flatten)]
    pub state: State,
}

/// How the deploy ended, once it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    /// Live, old containers retired, cleaned up.
    Finished,
    /// Failed or interrupted before the switch, and undone.
    Undone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub release: u64,
    /// The release that was live when the deploy began.
    #[serde(default)]
    pub previous: Option<u64>,
    /// `compose` or `swarm`, once chosen.
    #[serde(default)]
    pub mode: Option<String>,
    /// Every container of the app before anything started (the snapshot
    /// the plan was made from): anything else is the new release's.
    #[serde(default)]
    pub old_ids: Vec<String>,
    /// Services that switch blue/green.
    #[serde(default)]
    pub switched: Vec<String>,
    /// The old containers that go once traffic moved.
    #[serde(default)]
    pub retiring: Vec<String>,
    /// The detached kata process that retires them, when one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retirer: Option<u32>,
    pub steps: Vec<Entry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<End>,
}

impl Journal {
    pub fn new(release: u64, previous: Option<u64>, planned: &[Step]) -> Journal {
        let mut j = Journal {
            release,
            previous,
            mode: None,
            old_ids: vec![],
            switched: vec![],
            retiring: vec![],
            retirer: None,
            steps: vec![],
            end: None,
        };
        for s in planned {
            j.plan(*s, vec![]);
        }
        j
    }

    /// Plans `step` (again: its argv is replaced) unless it already ran.
    pub fn plan(&mut self, step: Step, argv: Vec<Vec<String>>) {
        match self.steps.iter_mut().find(|e| e.step == step) {
            Some(e) => e.argv = argv,
            None => self.steps.push(Entry {
                step,
                argv,
                state: State::Planned,
            }),
        }
    }

    /// Records a release's plan before its first step runs: the mode, the
    /// snapshot of containers it was made from, the services that switch,
    /// and the exact argv of the build, start and retire steps.
    pub fn record_plan(&mut self, plan: &ReleasePlan) {
        self.mode = Some(plan.mode.to_string());
        let builds = plan.builds.iter().map(|b| b.run.args.clone()).collect();
        self.plan(Step::Build, builds);
        self.plan(Step::StartNew, plan.start.argv());
        if let Start::Compose(c) = &plan.start {
            self.old_ids = c.old_ids.clone();
            self.switched = c.switched.clone();
            self.retiring = c.retiring.iter().map(|c| c.id.clone()).collect();
            self.plan(Step::RetireOld, c.retire.clone());
        }
    }

    pub fn state(&self, step: Step) -> State {
        self.steps
            .iter()
            .find(|e| e.step == step)
            .map(|e| e.state.clone())
            .unwrap_or(State::Planned)
    }

    pub fn done(&self, step: Step) -> bool {
        self.state(step) == State::Done
    }

    fn set(&mut self, step: Step, state: State) {
        match self.steps.iter_mut().find(|e| e.step == step) {
            Some(e) => e.state = state,
            None => self.steps.push(Entry {
                step,
                argv: vec![],
                state,
            }),
        }
    }

    /// The last step that began (where a dead deploy stopped).
    pub fn last_begun(&self) -> Option<Step> {
        self.steps
            .iter()
            .filter(|e| e.state != State::Planned)
            .map(|e| e.step)
            .max()
    }
}

pub fn file(paths: &Paths, app: &str, n: u64) -> PathBuf {
    crate::release::dir(paths, app, n).join("journal.json")
}

pub fn save(paths: &Paths, app: &str, j: &Journal) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(j).expect("journal serialises");
    json.push(b'\n');
    crate::fsutil::write_atomic(&file(paths, app, j.release), &json)
}

/// The journal of release `n`; `Ok(None)` when it has none.
pub fn load(paths: &Paths, app: &str, n: u64) -> io::Result<Option<Journal>> {
    let path = file(paths, app, n);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is damaged: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A running deploy's journal: each change is on disk before the call that
/// made it returns.
pub struct Recorder<'a> {
    paths: &'a Paths,
    app: &'a str,
    journal: RefCell<Journal>,
}

impl<'a> Recorder<'a> {
    pub fn new(paths: &'a Paths, app: &'a str, journal: Journal) -> io::Result<Recorder<'a>> {
        save(paths, app, &journal)?;
        Ok(Recorder {
            paths,
            app,
            journal: RefCell::new(journal),
        })
    }

    pub fn release(&self) -> u64 {
        self.journal.borrow().release
    }

    pub fn get(&self) -> Journal {
        self.journal.borrow().clone()
    }

    /// Changes the journal and writes it.
    pub fn update(&self, f: impl FnOnce(&mut Journal)) -> io::Result<()> {
        let mut j = self.journal.borrow_mut();
        f(&mut j);
        save(self.paths, self.app, &j)
    }

    /// Records `step` begun, runs it, records its outcome.
    pub fn step<T, E: std::fmt::Display + From<io::Error>>(
        &self,
        step: Step,
        run: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.begin(step)?;
        let out = run();
        match &out {
            Ok(_) => self.done(step)?,
            Err(e) => self.fail_open(e)?,
        }
        out
    }

    /// Records `step` begun (before anything of it runs).
    pub fn begin(&self, step: Step) -> io::Result<()> {
        self.update(|j| j.set(step, State::Started))?;
        pause_point(self.paths, step);
        Ok(())
    }

    pub fn done(&self, step: Step) -> io::Result<()> {
        self.update(|j| j.set(step, State::Done))
    }

    /// Records every begun step that has not ended as failed with `e`.
    pub fn fail_open(&self, e: &impl std::fmt::Display) -> io::Result<()> {
        let why = e.to_string().lines().next().unwrap_or("").to_owned();
        self.update(|j| {
            for entry in &mut j.steps {
                if entry.state == State::Started {
                    entry.state = State::Failed(why.clone());
                }
            }
        })
    }
}

/// The test hook: with `KATA_TEST_PAUSE_AT=<step>`, kata stops once that
/// step is recorded begun, writes `state/test-paused` (`<pid> <step>`) and
/// waits there to be killed. Used by the kill-point tests only.
pub fn pause_point(paths: &Paths, step: Step) {
    if std::env::var("KATA_TEST_PAUSE_AT").ok().as_deref() != Some(step.name()) {
        return;
    }
    let marker = paths.root().join("state").join("test-paused");
    let _ = std::fs::write(&marker, format!("{} {step}\n", std::process::id()));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_recorded_as_they_happen_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path());
        let rec = Recorder::new(
            &paths,
            "a",
            Journal::new(3, Some(2), &[Step::Prepare, Step::Build]),
        )
        .unwrap();
        rec.update(|j| {
            j.plan(
                Step::StartNew,
                vec![vec!["docker".into(), "compose".into(), "up".into()]],
            )
        })
        .unwrap();
        rec.step(Step::Prepare, || Ok::<_, io::Error>(())).unwrap();
        let e = rec
            .step(Step::Build, || {
                Err::<(), _>(io::Error::other("no space left\nmore"))
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "no space left\nmore");
        let j = load(&paths, "a", 3).unwrap().unwrap();
        assert_eq!(j.state(Step::Prepare), State::Done);
        assert_eq!(j.state(Step::Build), State::Failed("no space left".into()));
        assert_eq!(j.state(Step::StartNew), State::Planned);
        assert_eq!(j.steps[2].argv[0].join(" "), "docker compose up");
        assert_eq!(j.last_begun(), Some(Step::Build));
        assert_eq!(load(&paths, "a", 4).unwrap(), None);
        std::fs::write(file(&paths, "a", 3), "{\"release\": 3, \"st").unwrap();
        let e = load(&paths, "a", 3).unwrap_err();
        assert!(e.to_string().contains("journal.json is damaged"), "{e}");
    }
}
