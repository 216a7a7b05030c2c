//! A layered (Sugiyama-style) layout of a workflow's step graph, drawn top to bottom.
//!
//! Three passes, each linear or close to it in the size of the graph, so a 1,000-step run lays
//! out in milliseconds on the server and the browser only paints an SVG:
//!
//! 1. **Layers**: a step sits one layer below its deepest dependency (longest path from the
//!    roots, in topological order).
//! 2. **Order**: within a layer, steps start in declaration order, then a few sweeps sort each
//!    layer by the mean position of its neighbours in the layer above (going down) or below
//!    (going up), the barycenter heuristic that removes most edge crossings.
//! 3. **Coordinates**: every layer is centred on the widest one.
//!
//! Edges spanning several layers are drawn as one curve rather than routed through dummy nodes:
//! workflows are shallow and this keeps the layout small.

/// A step box's width, in SVG units.
pub const NODE_WIDTH: u32 = 240;
/// A step box's height.
pub const NODE_HEIGHT: u32 = 66;
const GAP_X: u32 = 28;
const GAP_Y: u32 = 46;
const MARGIN: u32 = 8;
/// Down and up sweeps of the ordering pass.
const SWEEPS: usize = 4;

/// Where every step and edge goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The top-left corner of step `i`'s box.
    pub nodes: Vec<(u32, u32)>,
    /// Step `i`'s layer (0 for steps without dependencies).
    pub layers: Vec<usize>,
    /// The drawing's width.
    pub width: u32,
    /// The drawing's height.
    pub height: u32,
}

impl Layout {
    /// Lays out `n` steps with dependency `edges` (`(from, to)`: `to` runs after `from`);
    /// `topological` lists every step, each after its dependencies (a [`crate::workflow::Dag`]
    /// guarantees one exists).
    pub fn layered(n: usize, edges: &[(usize, usize)], topological: &[usize]) -> Layout {
        let mut preds = vec![Vec::new(); n];
        let mut succs = vec![Vec::new(); n];
        for &(from, to) in edges {
            preds[to].push(from);
            succs[from].push(to);
        }
        let mut layers = vec![0usize; n];
        for &v in topological {
            layers[v] = preds[v].iter().map(|&u| layers[u] + 1).max().unwrap_or(0);
        }
        let depth = layers.iter().max().map_or(0, |d| d + 1);
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
        for (v, &layer) in layers.iter().enumerate() {
            rows[layer].push(v);
        }
        order_rows(&mut rows, &preds, &succs, n);

        let widest = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
        let pitch_x = NODE_WIDTH + GAP_X;
        let pitch_y = NODE_HEIGHT + GAP_Y;
        let mut nodes = vec![(0, 0); n];
        for (layer, row) in rows.iter().enumerate() {
            let offset = (widest - row.len() as u32) * pitch_x / 2;
            for (slot, &v) in row.iter().enumerate() {
                nodes[v] = (
                    MARGIN + offset + slot as u32 * pitch_x,
                    MARGIN + layer as u32 * pitch_y,
                );
            }
        }
        Layout {
            nodes,
            layers,
            width: 2 * MARGIN + (widest * pitch_x).saturating_sub(GAP_X),
            height: 2 * MARGIN + (depth as u32 * pitch_y).saturating_sub(GAP_Y),
        }
    }

    /// The SVG path of an edge from step `from`'s bottom to step `to`'s top.
    pub fn edge_path(&self, from: usize, to: usize) -> String {
        let (x1, y1) = self.nodes[from];
        let (x2, y2) = self.nodes[to];
        let (x1, y1) = (x1 + NODE_WIDTH / 2, y1 + NODE_HEIGHT);
        let x2 = x2 + NODE_WIDTH / 2;
        let bend = (y2.saturating_sub(y1)) / 2;
        format!(
            "M{x1} {y1} C{x1} {} {x2} {} {x2} {y2}",
            y1 + bend,
            y2.saturating_sub(bend)
        )
    }
}

/// Sorts each row by the barycenter of its neighbours, sweeping down then up.
fn order_rows(rows: &mut [Vec<usize>], preds: &[Vec<usize>], succs: &[Vec<usize>], n: usize) {
    let mut position = vec![0f64; n];
    let place = |rows: &[Vec<usize>], position: &mut [f64]| {
        for row in rows {
            for (slot, &v) in row.iter().enumerate() {
                position[v] = slot as f64;
            }
        }
    };
    place(rows, &mut position);
    for sweep in 0..SWEEPS {
        let down = sweep % 2 == 0;
        let layer_order: Vec<usize> = if down {
            (1..rows.len()).collect()
        } else {
            (0..rows.len().saturating_sub(1)).rev().collect()
        };
        for layer in layer_order {
            let neighbours = if down { preds } else { succs };
            let mut keyed: Vec<(f64, usize)> = rows[layer]
                .iter()
                .map(|&v| {
                    let near = &neighbours[v];
                    let key = if near.is_empty() {
                        position[v]
                    } else {
                        near.iter().map(|&u| position[u]).sum::<f64>() / near.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            rows[layer] = keyed.into_iter().map(|(_, v)| v).collect();
            for (slot, &v) in rows[layer].iter().enumerate() {
                position[v] = slot as f64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_sits_below_its_deepest_dependency() {
        // a -> b -> c, a -> c: c is on layer 2, not 1.
        let layout = Layout::layered(3, &[(0, 1), (1, 2), (0, 2)], &[0, 1, 2]);
        assert_eq!(layout.layers, vec![0, 1, 2]);
        assert!(layout.nodes[0].1 < layout.nodes[1].1);
        assert!(layout.nodes[1].1 < layout.nodes[2].1);
    }

    #[test]
    fn a_fan_out_shares_one_layer_centred_under_its_root() {
        // prep -> three trainers -> evaluate -> publish (the churn example's shape).
        let edges = [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4), (4, 5)];
        let layout = Layout::layered(6, &edges, &[0, 1, 2, 3, 4, 5]);
        assert_eq!(layout.layers, vec![0, 1, 1, 1, 2, 3]);
        let xs: Vec<u32> = (1..4).map(|i| layout.nodes[i].0).collect();
        assert!(xs[0] < xs[1] && xs[1] < xs[2], "{xs:?}");
        // The root is centred over the middle trainer.
        assert_eq!(layout.nodes[0].0, layout.nodes[2].0);
        assert_eq!(layout.width, 2 * MARGIN + 3 * NODE_WIDTH + 2 * GAP_X);
    }

    #[test]
    fn ordering_untangles_crossed_edges() {
        // a -> d, b -> c declared crossed: c and d swap so the edges do not cross.
        let layout = Layout::layered(4, &[(0, 3), (1, 2)], &[0, 1, 2, 3]);
        assert!(layout.nodes[0].0 < layout.nodes[1].0);
        assert!(layout.nodes[3].0 < layout.nodes[2].0);
    }

    #[test]
    fn every_box_is_inside_the_drawing_and_none_overlap() {
        let n = 40;
        let edges: Vec<(usize, usize)> = (1..n).map(|i| (i / 3, i)).collect();
        let order: Vec<usize> = (0..n).collect();
        let layout = Layout::layered(n, &edges, &order);
        for (i, &(x, y)) in layout.nodes.iter().enumerate() {
            assert!(x + NODE_WIDTH <= layout.width && y + NODE_HEIGHT <= layout.height);
            for &(x2, y2) in &layout.nodes[i + 1..] {
                let apart = x + NODE_WIDTH <= x2
                    || x2 + NODE_WIDTH <= x
                    || y + NODE_HEIGHT <= y2
                    || y2 + NODE_HEIGHT <= y;
                assert!(apart, "boxes at ({x},{y}) and ({x2},{y2}) overlap");
            }
        }
    }

    #[test]
    fn edges_run_from_a_bottom_to_a_top() {
        let layout = Layout::layered(2, &[(0, 1)], &[0, 1]);
        let (x, y) = layout.nodes[0];
        let path = layout.edge_path(0, 1);
        assert!(path.starts_with(&format!("M{} {} C", x + NODE_WIDTH / 2, y + NODE_HEIGHT)));
        assert!(path.ends_with(&format!(" {}", layout.nodes[1].1)));
    }
}
