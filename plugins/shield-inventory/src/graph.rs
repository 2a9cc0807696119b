//! The site's adjacency graph: zones (`building/floor/zone`) joined by
//! walkable edges with a cost in metres or seconds, and Dijkstra's shortest
//! paths over it. Edges are two-way (a corridor, a door, a stairway between
//! floors); a pair listed twice keeps its cheaper cost.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::config::Place;

/// Zones and the cost of walking between neighbours.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    index: BTreeMap<Place, usize>,
    /// Neighbours of each node with the edge's cost.
    adjacent: Vec<Vec<(usize, u64)>>,
}

impl Graph {
    /// A graph of two-way `edges` (from, to, cost).
    pub fn new(edges: &[(Place, Place, u64)]) -> Graph {
        let mut graph = Graph::default();
        for (from, to, cost) in edges {
            let (a, b) = (graph.node(from), graph.node(to));
            graph.adjacent[a].push((b, *cost));
            graph.adjacent[b].push((a, *cost));
        }
        graph
    }

    fn node(&mut self, place: &Place) -> usize {
        let next = self.index.len();
        let n = *self.index.entry(place.clone()).or_insert(next);
        if n == next {
            self.adjacent.push(Vec::new());
        }
        n
    }

    /// Whether the graph has no edges.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// How many places are on edges.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether `place` is on some edge.
    pub fn contains(&self, place: &Place) -> bool {
        self.index.contains_key(place)
    }

    /// The cheapest cost from `from` to every place reachable from it
    /// (`from` itself at 0, even when it is on no edge).
    pub fn distances(&self, from: &Place) -> Distances<'_> {
        let Some(&source) = self.index.get(from) else {
            return Distances { from: from.clone(), known: false, cost: Vec::new(), index: &self.index };
        };
        let mut cost: Vec<Option<u64>> = vec![None; self.adjacent.len()];
        cost[source] = Some(0);
        let mut queue = BinaryHeap::from([Reverse((0u64, source))]);
        while let Some(Reverse((d, n))) = queue.pop() {
            if cost[n].is_some_and(|best| d > best) {
                continue; // a stale entry: n was reached more cheaply since
            }
            for &(m, c) in &self.adjacent[n] {
                let through = d.saturating_add(c);
                if cost[m].is_none_or(|best| through < best) {
                    cost[m] = Some(through);
                    queue.push(Reverse((through, m)));
                }
            }
        }
        Distances { from: from.clone(), known: true, cost, index: &self.index }
    }
}

/// Shortest costs from one place, as [`Graph::distances`] found them.
#[derive(Debug)]
pub struct Distances<'g> {
    from: Place,
    known: bool,
    cost: Vec<Option<u64>>,
    index: &'g BTreeMap<Place, usize>,
}

impl Distances<'_> {
    /// Whether the starting place is in the graph (if not, only the place itself is reachable).
    pub fn known(&self) -> bool {
        self.known
    }

    /// The cheapest cost to `to`, `None` if no path leads there.
    pub fn to(&self, to: &Place) -> Option<u64> {
        if *to == self.from {
            return Some(0);
        }
        self.index.get(to).and_then(|&n| self.cost.get(n).copied().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn p(text: &str) -> Place {
        Place::parse(text).unwrap()
    }

    fn graph(edges: &[(&str, &str, u64)]) -> Graph {
        Graph::new(&edges.iter().map(|&(a, b, c)| (p(a), p(b), c)).collect::<Vec<_>>())
    }

    #[test]
    fn a_detour_beats_an_expensive_direct_edge_and_stairs_join_floors() {
        let g = graph(&[
            ("m/1/hall", "m/1/gym", 100),
            ("m/1/hall", "m/1/stairs", 10),
            ("m/1/stairs", "m/2/stairs", 15),
            ("m/2/stairs", "m/2/lab", 20),
            ("m/2/lab", "m/1/gym", 5),
        ]);
        let d = g.distances(&p("m/1/hall"));
        assert!(d.known());
        assert_eq!(d.to(&p("m/1/hall")), Some(0));
        assert_eq!(d.to(&p("m/2/lab")), Some(45));
        assert_eq!(d.to(&p("m/1/gym")), Some(50), "through the upper floor, not the 100 m edge");
        // Edges are two-way.
        assert_eq!(g.distances(&p("m/1/gym")).to(&p("m/1/hall")), Some(50));
    }

    #[test]
    fn unreachable_and_unknown_places_have_no_distance() {
        let g = graph(&[("m/1/a", "m/1/b", 1), ("annex/1/x", "annex/1/y", 1)]);
        let d = g.distances(&p("m/1/a"));
        assert_eq!(d.to(&p("annex/1/x")), None, "another component");
        assert_eq!(d.to(&p("m/9/nowhere")), None, "not in the graph");
        let lost = g.distances(&p("m/9/nowhere"));
        assert!(!lost.known());
        assert_eq!(lost.to(&p("m/9/nowhere")), Some(0), "a place is always at 0 from itself");
        assert_eq!(lost.to(&p("m/1/a")), None);
    }

    #[test]
    fn a_pair_listed_twice_keeps_the_cheaper_edge() {
        let g = graph(&[("m/1/a", "m/1/b", 9), ("m/1/b", "m/1/a", 4)]);
        assert_eq!(g.distances(&p("m/1/a")).to(&p("m/1/b")), Some(4));
    }

    /// Property: on random graphs Dijkstra agrees with Floyd–Warshall, is
    /// never worse than any direct edge, and obeys the triangle inequality
    /// along every edge.
    #[test]
    fn dijkstra_matches_floyd_warshall_on_random_graphs() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..500 {
            let n = 1 + rng.below(9) as usize;
            let places: Vec<Place> = (0..n).map(|i| Place::new("b", &(i % 3).to_string(), &format!("z{i}"))).collect();
            let edges: Vec<(Place, Place, u64)> = (0..rng.below(20))
                .filter_map(|_| {
                    let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
                    (a != b).then(|| (places[a].clone(), places[b].clone(), rng.below(50)))
                })
                .collect();
            let g = Graph::new(&edges);
            let mut best = vec![vec![None::<u64>; n]; n];
            for (i, row) in best.iter_mut().enumerate() {
                row[i] = Some(0);
            }
            let at = |p: &Place| places.iter().position(|q| q == p).unwrap();
            for (a, b, c) in &edges {
                let (a, b) = (at(a), at(b));
                for (x, y) in [(a, b), (b, a)] {
                    best[x][y] = Some(best[x][y].map_or(*c, |old: u64| old.min(*c)));
                }
            }
            for k in 0..n {
                for i in 0..n {
                    for j in 0..n {
                        if let (Some(ik), Some(kj)) = (best[i][k], best[k][j])
                            && best[i][j].is_none_or(|ij| ik + kj < ij)
                        {
                            best[i][j] = Some(ik + kj);
                        }
                    }
                }
            }
            for (i, from) in places.iter().enumerate() {
                let d = g.distances(from);
                for (j, to) in places.iter().enumerate() {
                    assert_eq!(d.to(to), best[i][j], "round {round}: {from} to {to} over {edges:?}");
                }
                for (a, b, c) in &edges {
                    if a == from {
                        assert!(d.to(b).unwrap() <= *c, "round {round}: worse than the direct edge {a}-{b}");
                    }
                    if let Some(da) = d.to(a) {
                        assert!(d.to(b).unwrap() <= da + c, "round {round}: triangle inequality along {a}-{b}");
                    }
                }
            }
        }
    }
}
