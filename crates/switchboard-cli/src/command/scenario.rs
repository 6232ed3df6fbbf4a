//! Every mechanism's place in `tour` and `bench`, in one table: adding a
//! mechanism to both is adding one [`Scenario`] — its tour row and the tour
//! peers it starts, and its bench paths with their floors, payloads and
//! set-ups (the parent's side and the child's). The functions it names are
//! written in `tour.rs` and `bench/setup.rs`; nothing else dispatches by
//! name.

use super::bench::setup;
use super::bench::{
    death, BenchPath, Setup, ALL_PAYLOADS, COPY_PAYLOADS, DDE_PAYLOADS, LOAN_PAYLOADS, SMALLEST_PAYLOAD,
};
use super::tour::{self, PeerRole, Step};

/// One mechanism in the tour and the bench.
pub struct Scenario {
    /// Its tour row (`None`: not in the tour).
    pub tour: Option<Step>,
    /// The tour peers its row starts (`switchboard tour-peer ROLE`).
    pub peers: &'static [(&'static str, PeerRole)],
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
pub const SCENARIOS: [Scenario; 17] = [
    Scenario { tour: Some(tour::mapping_row), peers: &[("echo", tour::echo_peer)], bench: &[] },
    Scenario { tour: Some(tour::semaphore_row), peers: &[("semaphore", tour::semaphore_peer)], bench: &[] },
    Scenario { tour: Some(tour::event_row), peers: &[("event-waiter", tour::event_waiter_peer)], bench: &[] },
    Scenario { tour: Some(tour::mutex_row), peers: &[("mutex-owner", tour::mutex_owner_peer)], bench: &[] },
    Scenario { tour: Some(tour::wait_any_row), peers: &[("hold-and-set", tour::hold_and_set_peer)], bench: &[] },
    Scenario { tour: Some(tour::handle_row), peers: &[("take-handle", tour::take_handle_peer)], bench: &[] },
    Scenario {
        tour: Some(tour::shm_link_row),
        peers: &[("link-echo", tour::link_echo_peer)],
        bench: &[
            echo("shm_link_busy", "spin", setup::shm_link_parent, setup::shm_link_child, ALL_PAYLOADS),
            echo("shm_link_adaptive", "spin", setup::shm_link_parent, setup::shm_link_child, ALL_PAYLOADS),
            echo("shm_link_blocking", "futex", setup::shm_link_parent, setup::shm_link_child, ALL_PAYLOADS),
            echo("shm_loan", "spin", setup::shm_loan_parent, setup::shm_loan_child, LOAN_PAYLOADS),
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
        peers: &[("port-echo", tour::port_echo_peer)],
        bench: &[echo("port", "spin", setup::port_parent, setup::port_child, SMALLEST_PAYLOAD)],
    },
    Scenario { tour: Some(tour::anon_pipe_row), peers: &[("upper", tour::upper_peer)], bench: &[] },
    Scenario {
        tour: Some(tour::named_pipe_row),
        peers: &[("pipe-echo", tour::pipe_echo_peer)],
        bench: &[
            echo(
                "pipe_message_transact",
                "spin",
                setup::pipe_transact_parent,
                setup::pipe_transact_child,
                ALL_PAYLOADS,
            ),
            echo("remote_pipe_transact", "tcp", setup::remote_pipe_parent, setup::remote_pipe_child, COPY_PAYLOADS),
        ],
    },
    Scenario { tour: Some(tour::remote_pipe_row), peers: &[("remote-echo", tour::remote_echo_peer)], bench: &[] },
    Scenario {
        tour: Some(tour::mailslot_row),
        peers: &[("slot-echo", tour::slot_echo_peer)],
        bench: &[echo("mailslot", "spin", setup::mailslot_parent, setup::mailslot_child, ALL_PAYLOADS)],
    },
    Scenario {
        tour: Some(tour::message_row),
        peers: &[("msg-receiver", tour::message_receiver_peer)],
        bench: &[
            echo("message_send", "spin", setup::message_send_parent, setup::message_send_child, SMALLEST_PAYLOAD),
            echo("message_post", "spin", setup::message_post_parent, setup::message_post_child, SMALLEST_PAYLOAD),
            echo("copydata", "spin", setup::message_send_parent, setup::message_send_child, COPY_PAYLOADS),
        ],
    },
    Scenario {
        tour: Some(tour::clipboard_row),
        peers: &[("clip-setter", tour::clip_setter_peer), ("clip-owner", tour::clip_owner_peer)],
        bench: &[],
    },
    Scenario {
        tour: Some(tour::dde_row),
        peers: &[("dde-sheet", tour::dde_sheet_peer), ("dde-poker", tour::dde_poker_peer)],
        bench: &[
            echo("dde_request", "spin", setup::dde_parent, setup::dde_child, DDE_PAYLOADS),
            echo("dde_advise", "spin", setup::dde_parent, setup::dde_child, DDE_PAYLOADS),
        ],
    },
    Scenario {
        tour: Some(tour::rpc_row),
        peers: &[("rpc-calc", tour::rpc_calc_peer)],
        bench: &[
            echo("rpc_call_local", "spin", setup::rpc_parent, setup::rpc_child, COPY_PAYLOADS),
            echo("rpc_call_tcp", "tcp", setup::rpc_parent, setup::rpc_child, COPY_PAYLOADS),
        ],
    },
    Scenario {
        tour: Some(tour::socket_row),
        peers: &[("socket-echo", tour::socket_echo_peer)],
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

/// The tour peer called `role`.
pub fn tour_peer(role: &str) -> Option<PeerRole> {
    SCENARIOS.iter().flat_map(|s| s.peers.iter()).find(|(name, _)| *name == role).map(|(_, run)| *run)
}

/// The bench's paths, in order.
pub fn bench_paths() -> impl Iterator<Item = &'static BenchPath> {
    SCENARIOS.iter().flat_map(|s| s.bench.iter())
}
