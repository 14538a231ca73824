//! `replay --html FILE`: the run as a space-time diagram in one
//! self-contained HTML page (no network: the script and style are inline).
//!
//! One lane per node, events downward in trace order, the node's role and
//! term as a band on its lane, messages as arrows from send to delivery
//! (lost ones end in a cross, late ones dashed), faults and client
//! operations on the lanes, the panic or violation highlighted and scrolled
//! to. With both engines the two runs stand side by side and the first
//! divergence is marked with the patch that explains it.
//!
//! The page is drawn from the trace lines alone ([`events::parse`]); the
//! counts [`Summary`] reports are computed here and checked against what
//! the browser drew (`scripts/replay-html`).

pub mod events;

use serde::Serialize;

use events::{Event, Kind};

const PAGE: &str = include_str!("page.html");

/// One run to draw.
pub struct Panel {
    /// The heading, e.g. `seed-620 upstream seed 1`.
    pub title: String,
    /// The trace lines.
    pub lines: Vec<String>,
    /// How the run ended, if it failed, and the event it failed at.
    pub failure: Option<(usize, String)>,
    /// The first event that differs from the other engine's run, and why.
    pub divergence: Option<(usize, String)>,
}

/// What a page shows, for the browser test to check against the DOM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Lanes over all panels.
    pub lanes: usize,
    /// Message arrows over all panels (delivered and lost).
    pub arrows: usize,
    /// Panels with a highlighted failure.
    pub failures: usize,
}

#[derive(Serialize)]
struct PanelData {
    title: String,
    lanes: Vec<u64>,
    events: Vec<Event>,
    failure: Option<Mark>,
    divergence: Option<Mark>,
}

/// A line across a panel at one event, with what it marks.
#[derive(Serialize)]
struct Mark {
    seq: usize,
    text: String,
}

/// The page and what it shows.
pub fn render(panels: Vec<Panel>) -> (String, Summary) {
    let mut summary = Summary {
        lanes: 0,
        arrows: 0,
        failures: 0,
    };
    let data: Vec<PanelData> = panels
        .into_iter()
        .map(|panel| {
            let events = events::parse(&panel.lines);
            let lanes = lanes(&events);
            summary.lanes += lanes.len();
            summary.arrows += events
                .iter()
                .filter(|e| matches!(e.kind, Kind::Deliver { .. } | Kind::Lost { .. }))
                .count();
            summary.failures += usize::from(panel.failure.is_some());
            PanelData {
                title: panel.title,
                lanes,
                events,
                failure: panel.failure.map(|(seq, text)| Mark { seq, text }),
                divergence: panel.divergence.map(|(seq, text)| Mark { seq, text }),
            }
        })
        .collect();
    // `</` cannot end the script element from inside a JSON string.
    let json = serde_json::to_string(&data)
        .expect("plain data serializes")
        .replace("</", "<\\/");
    (PAGE.replace("/*PANELS*/[]", &json), summary)
}

/// Every node an event names, in id order.
fn lanes(events: &[Event]) -> Vec<u64> {
    let mut ids = std::collections::BTreeSet::new();
    for e in events {
        match &e.kind {
            Kind::Deliver { from, to, .. }
            | Kind::Delayed { from, to, .. }
            | Kind::Lost { from, to, .. } => {
                ids.insert(*from);
                ids.insert(*to);
            }
            Kind::Role { node, .. }
            | Kind::Crash { node }
            | Kind::Restart { node }
            | Kind::Note { node, .. } => {
                ids.insert(*node);
            }
            Kind::Partition { links } => ids.extend(links.iter().flat_map(|&(a, b)| [a, b])),
            Kind::Heal | Kind::World => {}
        }
    }
    ids.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_embeds_the_events_and_counts_what_it_draws() {
        let lines = [
            "    0 n1 Follower t1 timeout 13",
            "    1 2->1 MsgAppend t4 621/1 [622..622] c619",
            "    1 2->3 MsgAppend t4 621/1 [622..622] c619 Cut",
            "    2 n3 note </script><b>",
        ]
        .map(String::from)
        .to_vec();
        let (page, summary) = render(vec![Panel {
            title: "t".into(),
            lines,
            failure: Some((1, "panicked: x".into())),
            divergence: None,
        }]);
        assert_eq!(
            summary,
            Summary {
                lanes: 3,
                arrows: 2,
                failures: 1
            }
        );
        assert!(page.contains(r#""kind":"lost""#));
        assert!(!page.contains("/*PANELS*/"));
        assert_eq!(page.matches("</script>").count(), 1, "only the page's own");
        assert!(
            !page.contains(" src=") && !page.contains("<link"),
            "nothing to fetch"
        );
    }
}
