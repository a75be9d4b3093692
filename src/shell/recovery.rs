//! What to do about a deploy that did not end: a pure function of its
//! journal and one snapshot of the app's containers. The rule is the
//! switch: once Caddy may route to the new containers, the deploy is
//! finished (routed again to be sure, recorded live, old containers
//! retired); before that, it is undone (new containers removed, the
//! previous release's file and route restored, the release marked failed).

use crate::docker::Container;
use crate::journal::{Journal, State, Step};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The deploy ended; nothing to do.
    Nothing,
    /// Before the switch: take the new release away.
    Undo {
        /// Containers to remove (the new release's).
        remove: Vec<String>,
        /// Start the previous release's file again and route it (the new
        /// one's `up` may have recreated services in place).
        restore_previous: bool,
        /// Where the deploy stopped (`None`: before its journal existed).
        at: Option<Step>,
    },
    /// Caddy routes (or may route) to the new release: complete it.
    Finish {
        /// Write the new release's route again (the switch's outcome was
        /// not recorded, so Caddy may still route to the old containers).
        reroute: bool,
        record_live: bool,
        /// Old containers still there, to stop and remove.
        retire: Vec<String>,
        cleanup: bool,
        at: Step,
    },
}

/// Decides what to do about release `n` (pending or with an open journal)
/// given the app's containers now. `journal` is `None` for a release whose
/// journal was never written: it died first (or disk was full).
pub fn decide(n: u64, journal: Option<&Journal>, now: &[Container]) -> Action {
    let Some(j) = journal else {
        return Action::Undo {
            remove: now
                .iter()
                .filter(|c| c.release == Some(n))
                .map(|c| c.id.clone())
                .collect(),
            restore_previous: false,
            at: None,
        };
    };
    if j.end.is_some() {
        return Action::Nothing;
    }
    let swarm = j.mode.as_deref() == Some("swarm");
    let new: Vec<&Container> = now.iter().filter(|c| !j.old_ids.contains(&c.id)).collect();
    let forward = |reroute: bool| Action::Finish {
        reroute,
        record_live: !j.done(Step::RecordLive),
        retire: now
            .iter()
            .filter(|c| j.retiring.contains(&c.id))
            .map(|c| c.id.clone())
            .collect(),
        cleanup: !j.done(Step::Cleanup),
        at: j.last_begun().unwrap_or(Step::SwitchCaddy),
    };
    // The snapshot (`old_ids`) is recorded before anything starts: until
    // then no container is the new release's.
    let started = j.state(Step::StartNew) != State::Planned;
    let undo = || Action::Undo {
        remove: if swarm || !started {
            vec![] // swarm owns its tasks: deploying the previous stack replaces them
        } else {
            new.iter().map(|c| c.id.clone()).collect()
        },
        restore_previous: started,
        at: j.last_begun(),
    };
    match j.state(Step::SwitchCaddy) {
        State::Done => forward(false),
        // The route may or may not have been written: the new containers
        // passed the gate, so write it again if they still run.
        State::Started => {
            let serving = j
                .switched
                .iter()
                .all(|s| new.iter().any(|c| &c.service == s && c.state == "running"));
            if serving && (swarm || !new.is_empty() || j.switched.is_empty()) {
                forward(true)
            } else {
                undo()
            }
        }
        State::Planned | State::Failed(_) => undo(),
    }
}

/// The one line a command prints after recovering release `n` of `app`.
pub fn summary(app: &str, n: u64, action: &Action, previous: Option<u64>) -> String {
    match action {
        Action::Nothing => format!("release {n} of {app} needed nothing"),
        Action::Undo { remove, at, .. } => format!(
            "recovered {app}: release {n} was interrupted {}; undone ({} container(s) removed), {}",
            at.map(|s| format!("at {s}"))
                .unwrap_or_else(|| "before it started".into()),
            remove.len(),
            match previous {
                Some(p) => format!("release {p} stays live"),
                None => "no release is live".into(),
            }
        ),
        Action::Finish {
            reroute,
            retire,
            at,
            ..
        } => format!(
            "recovered {app}: release {n} was interrupted at {at} after the switch; finished it (release {n} is live{}, {} old container(s) retired)",
            if *reroute { ", routed again" } else { "" },
            retire.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{End, Journal, State, Step};

    fn c(id: &str, service: &str, state: &str, release: u64) -> Container {
        Container {
            id: id.into(),
            name: format!("app-{service}-{id}"),
            service: service.into(),
            state: state.into(),
            status: String::new(),
            release: Some(release),
        }
    }

    /// Release 2's journal killed once `at` was recorded begun: every
    /// earlier step done. Release 1 runs `old-web` and `db`.
    fn killed_at(at: Step) -> Journal {
        let mut j = Journal::new(2, Some(1), &crate::journal::STEPS);
        j.mode = Some("compose".into());
        if at >= Step::StartNew {
            // recorded with the plan of the start, from the snapshot
            j.old_ids = vec!["old-web".into(), "db".into()];
            j.switched = vec!["web".into()];
            j.retiring = vec!["old-web".into()];
        }
        for e in &mut j.steps {
            e.state = match e.step.cmp(&at) {
                std::cmp::Ordering::Less => State::Done,
                std::cmp::Ordering::Equal => State::Started,
                std::cmp::Ordering::Greater => State::Planned,
            };
        }
        j
    }

    fn before() -> Vec<Container> {
        vec![
            c("old-web", "web", "running", 1),
            c("db", "db", "running", 1),
        ]
    }

    fn after_start() -> Vec<Container> {
        let mut v = before();
        v.push(c("new-web", "web", "running", 2));
        v
    }

    #[test]
    fn killed_before_any_container_started_is_undone_with_nothing_to_remove() {
        for at in [Step::Prepare, Step::Build] {
            assert_eq!(
                decide(2, Some(&killed_at(at)), &before()),
                Action::Undo {
                    remove: vec![],
                    restore_previous: false,
                    at: Some(at)
                },
                "{at}"
            );
        }
    }

    #[test]
    fn killed_while_starting_or_gating_removes_the_new_containers() {
        for at in [Step::StartNew, Step::Gate] {
            assert_eq!(
                decide(2, Some(&killed_at(at)), &after_start()),
                Action::Undo {
                    remove: vec!["new-web".into()],
                    restore_previous: true,
                    at: Some(at)
                },
                "{at}"
            );
        }
        // a new container that already exited is removed too
        let mut now = before();
        now.push(c("new-web", "web", "exited", 2));
        let Action::Undo { remove, .. } = decide(2, Some(&killed_at(Step::Gate)), &now) else {
            panic!()
        };
        assert_eq!(remove, vec!["new-web".to_owned()]);
    }

    #[test]
    fn killed_during_the_switch_routes_again_when_the_new_containers_run() {
        assert_eq!(
            decide(2, Some(&killed_at(Step::SwitchCaddy)), &after_start()),
            Action::Finish {
                reroute: true,
                record_live: true,
                retire: vec!["old-web".into()],
                cleanup: true,
                at: Step::SwitchCaddy,
            }
        );
        // the new container died meanwhile: back to the old one
        let mut now = before();
        now.push(c("new-web", "web", "exited", 2));
        assert!(matches!(
            decide(2, Some(&killed_at(Step::SwitchCaddy)), &now),
            Action::Undo {
                restore_previous: true,
                ..
            }
        ));
    }

    #[test]
    fn killed_after_the_switch_is_finished_without_routing_again() {
        for at in [Step::RecordLive, Step::Drain, Step::RetireOld] {
            assert_eq!(
                decide(2, Some(&killed_at(at)), &after_start()),
                Action::Finish {
                    reroute: false,
                    record_live: at == Step::RecordLive,
                    retire: vec!["old-web".into()],
                    cleanup: true,
                    at,
                },
                "{at}"
            );
        }
        // killed while cleaning up: the old container is gone already
        let now = vec![
            c("db", "db", "running", 1),
            c("new-web", "web", "running", 2),
        ];
        assert_eq!(
            decide(2, Some(&killed_at(Step::Cleanup)), &now),
            Action::Finish {
                reroute: false,
                record_live: false,
                retire: vec![],
                cleanup: true,
                at: Step::Cleanup,
            }
        );
    }

    #[test]
    fn a_failed_deploy_whose_undo_was_cut_short_is_undone_again() {
        let mut j = killed_at(Step::Gate);
        j.steps[3].state = State::Failed("health check failed".into());
        assert!(matches!(
            decide(2, Some(&j), &after_start()),
            Action::Undo { restore_previous: true, ref remove, .. } if remove == &["new-web".to_owned()]
        ));
    }

    #[test]
    fn ended_deploys_need_nothing() {
        let mut j = killed_at(Step::Cleanup);
        j.end = Some(End::Finished);
        assert_eq!(decide(2, Some(&j), &after_start()), Action::Nothing);
    }

    #[test]
    fn no_journal_removes_the_releases_labelled_containers() {
        assert_eq!(
            decide(2, None, &after_start()),
            Action::Undo {
                remove: vec!["new-web".into()],
                restore_previous: false,
                at: None
            }
        );
    }

    #[test]
    fn swarm_undo_removes_no_task_container() {
        let mut j = killed_at(Step::Gate);
        j.mode = Some("swarm".into());
        j.old_ids = vec![];
        assert!(matches!(
            decide(2, Some(&j), &after_start()),
            Action::Undo { ref remove, restore_previous: true, .. } if remove.is_empty()
        ));
    }

    #[test]
    fn summaries_say_what_was_done() {
        let undo = decide(2, Some(&killed_at(Step::Gate)), &after_start());
        assert_eq!(
            summary("shop", 2, &undo, Some(1)),
            "recovered shop: release 2 was interrupted at gate; undone (1 container(s) removed), release 1 stays live"
        );
        let fin = decide(2, Some(&killed_at(Step::Drain)), &after_start());
        assert_eq!(
            summary("shop", 2, &fin, Some(1)),
            "recovered shop: release 2 was interrupted at drain after the switch; finished it (release 2 is live, 1 old container(s) retired)"
        );
    }
}
