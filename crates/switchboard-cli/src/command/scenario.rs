//! Every mechanism's place in `tour` and `bench`, in one table: adding a
//! mechanism to both is adding one [`Scenario`] (plus its tour row and its
//! bench set-up, which the entry names).

use super::tour::{self, Step};

/// One mechanism in the tour and the bench.
pub struct Scenario {
    /// Its tour row (`None`: not in the tour).
    pub tour: Option<Step>,
    /// Its bench paths and the floor each is measured against.
    pub bench: &'static [(&'static str, &'static str)],
}

/// Every mechanism, in tour order.
pub const SCENARIOS: [Scenario; 12] = [
    Scenario { tour: Some(tour::mapping_row), bench: &[] },
    Scenario { tour: Some(tour::semaphore_row), bench: &[] },
    Scenario { tour: Some(tour::event_row), bench: &[] },
    Scenario { tour: Some(tour::mutex_row), bench: &[] },
    Scenario { tour: Some(tour::wait_any_row), bench: &[] },
    Scenario { tour: Some(tour::handle_row), bench: &[] },
    Scenario {
        tour: Some(tour::shm_link_row),
        bench: &[
            ("shm_link_busy", "spin"),
            ("shm_link_adaptive", "spin"),
            ("shm_link_blocking", "futex"),
            ("peer_death", "futex"),
        ],
    },
    Scenario { tour: Some(tour::port_row), bench: &[("port", "spin")] },
    Scenario { tour: Some(tour::anon_pipe_row), bench: &[] },
    Scenario { tour: Some(tour::named_pipe_row), bench: &[("pipe_message_transact", "spin")] },
    Scenario { tour: Some(tour::mailslot_row), bench: &[("mailslot", "spin")] },
    Scenario { tour: Some(tour::socket_row), bench: &[("stream_unix", "unix_stream"), ("stream_tcp", "tcp")] },
];

/// The tour's rows, in order.
pub fn tour_steps() -> impl Iterator<Item = Step> {
    SCENARIOS.iter().filter_map(|s| s.tour)
}

/// The bench's (path, floor) pairs, in order.
pub fn bench_paths() -> impl Iterator<Item = (&'static str, &'static str)> {
    SCENARIOS.iter().flat_map(|s| s.bench.iter().copied())
}
