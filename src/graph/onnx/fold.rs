//! Constant folding: the shape arithmetic exporters emit around a flatten or a pad (Shape,
//! Gather, Unsqueeze, Concat, Slice, Cast, ConstantOfShape, Transpose, Reshape and arithmetic on
//! constants) evaluated once, on the host, when the model is loaded. Arrays are n-dimensional,
//! row-major; integers travel as f64 (exact for every shape and index a model holds).

use crate::error::{Error, Result};
use crate::formats::onnx::Array;

fn bad(msg: impl Into<String>) -> Error {
    Error::Model(msg.into())
}

/// An n-dimensional constant during folding.
#[derive(Debug, Clone, PartialEq)]
pub struct Nd {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    /// Integers (shapes, axes) rather than floats (weights).
    pub int: bool,
}

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// An axis in 0..rank from ONNX's possibly negative one.
pub fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    if (0..r.max(1)).contains(&a) {
        Ok(a as usize)
    } else {
        Err(bad(format!("axis {a} of a rank-{rank} value")))
    }
}

impl Nd {
    pub fn from_array(a: &Array) -> Self {
        match a {
            Array::Float(s, v) => Nd { shape: s.clone(), data: v.iter().map(|&x| x as f64).collect(), int: false },
            Array::Int(s, v) => Nd { shape: s.clone(), data: v.iter().map(|&x| x as f64).collect(), int: true },
        }
    }

    pub fn into_array(self) -> Array {
        if self.int {
            Array::Int(self.shape, self.data.into_iter().map(|x| x as i64).collect())
        } else {
            Array::Float(self.shape, self.data.into_iter().map(|x| x as f32).collect())
        }
    }

    pub fn ints(values: Vec<i64>) -> Self {
        Nd { shape: vec![values.len()], data: values.into_iter().map(|x| x as f64).collect(), int: true }
    }

    /// A reshape with ONNX's 0 (copy the dimension, unless `allow_zero`) and −1 (infer).
    pub fn reshape(mut self, target: &[i64], allow_zero: bool) -> Result<Self> {
        self.shape = reshape_target(&self.shape, target, allow_zero)?;
        Ok(self)
    }

    pub fn transpose(self, perm: &[usize]) -> Result<Self> {
        let rank = self.shape.len();
        let mut seen = vec![false; rank];
        if perm.len() != rank || perm.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true)) {
            return Err(bad(format!("a transpose {perm:?} of a rank-{rank} value")));
        }
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let (from, to) = (strides(&self.shape), strides(&shape));
        let mut data = vec![0.0; self.data.len()];
        for (i, out) in data.iter_mut().enumerate() {
            let src: usize = (0..rank).map(|d| (i / to[d]) % shape[d].max(1) * from[perm[d]]).sum();
            *out = self.data[src];
        }
        Ok(Nd { shape, data, int: self.int })
    }

    /// Elements at `indices` (each in −len..len) along `axis`.
    pub fn gather(&self, axis_: i64, indices: &Nd) -> Result<Self> {
        let ax = axis(axis_, self.shape.len())?;
        let len = self.shape[ax] as i64;
        let idx = indices
            .data
            .iter()
            .map(|&i| {
                let i = i as i64;
                let j = if i < 0 { i + len } else { i };
                if (0..len).contains(&j) {
                    Ok(j as usize)
                } else {
                    Err(bad(format!("a gather of index {i} from {len} elements")))
                }
            })
            .collect::<Result<Vec<usize>>>()?;
        let outer: usize = self.shape[..ax].iter().product();
        let inner: usize = self.shape[ax + 1..].iter().product();
        let mut data = Vec::with_capacity(outer * idx.len() * inner);
        for o in 0..outer {
            for &j in &idx {
                let start = (o * self.shape[ax] + j) * inner;
                data.extend_from_slice(&self.data[start..start + inner]);
            }
        }
        let shape = [&self.shape[..ax], &indices.shape[..], &self.shape[ax + 1..]].concat();
        Ok(Nd { shape, data, int: self.int })
    }

    pub fn concat(parts: &[Nd], axis_: i64) -> Result<Self> {
        let first = parts.first().ok_or_else(|| bad("a concat of nothing"))?;
        let ax = axis(axis_, first.shape.len())?;
        for p in parts {
            if p.shape.len() != first.shape.len() || (0..p.shape.len()).any(|d| d != ax && p.shape[d] != first.shape[d]) {
                return Err(bad(format!("a concat of constants of shapes {:?} and {:?}", first.shape, p.shape)));
            }
        }
        let outer: usize = first.shape[..ax].iter().product();
        let mut data = Vec::new();
        for o in 0..outer {
            for p in parts {
                let chunk: usize = p.shape[ax..].iter().product();
                data.extend_from_slice(&p.data[o * chunk..(o + 1) * chunk]);
            }
        }
        let mut shape = first.shape.clone();
        shape[ax] = parts.iter().map(|p| p.shape[ax]).sum();
        Ok(Nd { shape, data, int: parts.iter().all(|p| p.int) })
    }

    /// ONNX Slice: for each of `axes`, elements start..end by step (negative steps run backwards;
    /// bounds clamp as numpy's do).
    pub fn slice(&self, starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> Result<Self> {
        let rank = self.shape.len();
        let mut ranges: Vec<Vec<usize>> = self.shape.iter().map(|&n| (0..n).collect()).collect();
        for (k, &a) in axes.iter().enumerate() {
            let ax = axis(a, rank)?;
            let n = self.shape[ax] as i64;
            let step = *steps.get(k).unwrap_or(&1);
            if step == 0 {
                return Err(bad("a slice with step 0"));
            }
            let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
            let (start, end) = (norm(*starts.get(k).unwrap_or(&0)), norm(*ends.get(k).unwrap_or(&i64::MAX)));
            let mut picked = Vec::new();
            if step > 0 {
                let mut i = start.clamp(0, n);
                while i < end.min(n) {
                    picked.push(i as usize);
                    i += step;
                }
            } else {
                let mut i = start.clamp(-1, n - 1);
                while i > end.max(-1) {
                    picked.push(i as usize);
                    i += step;
                }
            }
            ranges[ax] = picked;
        }
        let shape: Vec<usize> = ranges.iter().map(Vec::len).collect();
        let (from, to) = (strides(&self.shape), strides(&shape));
        let count: usize = shape.iter().product();
        let data = (0..count).map(|i| self.data[(0..rank).map(|d| ranges[d][(i / to[d]) % shape[d]] * from[d]).sum::<usize>()]).collect();
        Ok(Nd { shape, data, int: self.int })
    }

    /// An element-wise op with numpy broadcasting.
    pub fn binary(&self, other: &Nd, f: impl Fn(f64, f64) -> f64) -> Result<Self> {
        let rank = self.shape.len().max(other.shape.len());
        let pad = |s: &[usize]| [vec![1; rank - s.len()], s.to_vec()].concat();
        let (a, b) = (pad(&self.shape), pad(&other.shape));
        let shape = (0..rank)
            .map(|d| match (a[d], b[d]) {
                (x, y) if x == y => Ok(x),
                (1, y) => Ok(y),
                (x, 1) => Ok(x),
                _ => Err(bad(format!("element-wise op on constants of shapes {:?} and {:?}", self.shape, other.shape))),
            })
            .collect::<Result<Vec<usize>>>()?;
        let (sa, sb, so) = (strides(&a), strides(&b), strides(&shape));
        let count: usize = shape.iter().product();
        let at = |s: &[usize], dims: &[usize], i: usize| (0..rank).map(|d| if dims[d] == 1 { 0 } else { (i / so[d]) % shape[d] * s[d] }).sum::<usize>();
        let int = self.int && other.int;
        let data = (0..count)
            .map(|i| {
                let v = f(self.data[at(&sa, &a, i)], other.data[at(&sb, &b, i)]);
                if int {
                    v.trunc()
                } else {
                    v
                }
            })
            .collect();
        Ok(Nd { shape, data, int })
    }
}

/// The shape a reshape to `target` gives `shape` (ONNX's 0 and −1 rules).
pub fn reshape_target(shape: &[usize], target: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let total: usize = shape.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allow_zero => *shape.get(i).ok_or_else(|| bad(format!("a reshape of {shape:?} to {target:?}")))?,
            t if t >= 0 => t as usize,
            _ => return Err(bad(format!("a reshape of {shape:?} to {target:?}"))),
        });
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(bad(format!("a reshape of {shape:?} to {target:?}")));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(bad(format!("a reshape of {shape:?} ({total} values) to {target:?}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nd(shape: &[usize], data: &[f64]) -> Nd {
        Nd { shape: shape.to_vec(), data: data.to_vec(), int: true }
    }

    #[test]
    fn torchscripts_pad_arithmetic_folds() {
        // F.pad(x, (0, 1, 1, 0)) as the TorchScript exporter writes it: the pads, padded with
        // zeros to 8, reshaped to (-1, 2), reversed along axis 0, transposed, flattened.
        let pads = Nd::concat(&[Nd::ints(vec![0, 1, 1, 0]), Nd::ints(vec![0, 0, 0, 0])], 0).unwrap();
        let pairs = pads.reshape(&[-1, 2], false).unwrap();
        let reversed = pairs.slice(&[-1], &[i64::MIN + 1], &[0], &[-1]).unwrap();
        let flat = reversed.transpose(&[1, 0]).unwrap().reshape(&[-1], false).unwrap();
        assert_eq!(flat.data, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn gather_and_broadcast() {
        let shape = Nd::ints(vec![1, 16, 4, 6]);
        let batch = shape.gather(0, &nd(&[], &[0.0])).unwrap();
        assert_eq!((batch.shape.clone(), batch.data.clone()), (vec![], vec![1.0]));
        let sum = nd(&[2, 1], &[1.0, 2.0]).binary(&nd(&[3], &[10.0, 20.0, 30.0]), |a, b| a + b).unwrap();
        assert_eq!(sum.shape, vec![2, 3]);
        assert_eq!(sum.data, vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
        assert!(reshape_target(&[1, 16, 2, 3], &[0, -1], false).unwrap() == vec![1, 96]);
        assert!(reshape_target(&[1, 16, 2, 3], &[5, -1], false).is_err());
    }
}
