//! Every mechanism's place in `tour` and `bench`, in one table: adding a
//! mechanism to both is adding one [`Scenario`] — its tour row and its
//! bench paths with their floors and set-ups (the parent's side and the
//! child's), named here and written beside the mechanism's other code.

use super::bench::setup;
use super::bench::{death, BenchPath, Setup, ALL_PAYLOADS, SMALLEST_PAYLOAD};
use super::tour::{self, Step};

/// One mechanism in the tour and the bench.
pub struct Scenario {
    /// Its tour row (`None`: not in the tour).
    pub tour: Option<Step>,
    /// Its bench paths.
    pub bench: &'static [BenchPath],
}

const fn echo(
    name: &'static str,
    floor: &'static str,
    parent: setup::ParentSide,
    child: setup::ChildSide,
    payloads: &'static [usize],
) -> BenchPath {
    BenchPath { name, floor, setup: Setup::Echo(parent, child), payloads }
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
            echo("shm_link_busy", "spin", setup::shm_link_parent, setup::shm_link_child, ALL_PAYLOADS),
            echo("shm_link_adaptive", "spin", setup::shm_link_parent, setup::shm_link_child, ALL_PAYLOADS),
            echo("shm_link_blocking", "futex", setup::shm_link_parent, setup::shm_link_child, ALL_PAYLOADS),
            BenchPath {
                name: death::NAME,
                floor: "futex",
                setup: Setup::Measured(death::measure, death::child),
                payloads: SMALLEST_PAYLOAD,
            },
        ],
    },
    Scenario {
        tour: Some(tour::port_row),
        bench: &[echo("port", "spin", setup::port_parent, setup::port_child, SMALLEST_PAYLOAD)],
    },
    Scenario { tour: Some(tour::anon_pipe_row), bench: &[] },
    Scenario {
        tour: Some(tour::named_pipe_row),
        bench: &[echo(
            "pipe_message_transact",
            "spin",
            setup::pipe_transact_parent,
            setup::pipe_transact_child,
            ALL_PAYLOADS,
        )],
    },
    Scenario {
        tour: Some(tour::mailslot_row),
        bench: &[echo("mailslot", "spin", setup::mailslot_parent, setup::mailslot_child, ALL_PAYLOADS)],
    },
    Scenario {
        tour: Some(tour::socket_row),
        bench: &[
            echo("stream_unix", "unix_stream", setup::stream_unix_parent, setup::stream_unix_child, ALL_PAYLOADS),
            echo("stream_tcp", "tcp", setup::stream_tcp_parent, setup::stream_tcp_child, ALL_PAYLOADS),
        ],
    },
];

/// The tour's rows, in order.
pub fn tour_steps() -> impl Iterator<Item = Step> {
    SCENARIOS.iter().filter_map(|s| s.tour)
}

/// The bench's paths, in order.
pub fn bench_paths() -> impl Iterator<Item = &'static BenchPath> {
    SCENARIOS.iter().flat_map(|s| s.bench.iter())
}
