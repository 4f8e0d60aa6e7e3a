//! A borrowed view of a weight matrix in its stored (possibly quantized) layout.

use mamba_format::QuantType;

/// A row-major matrix of `rows × cols` weights stored as `ty` blocks; each row is
/// `cols / ty.block_size()` consecutive blocks.
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    /// Element type.
    pub ty: QuantType,
    /// Number of rows (output features).
    pub rows: usize,
    /// Row length (input features); a multiple of the block size.
    pub cols: usize,
    /// The stored bytes, `rows * row_bytes()` long.
    pub data: &'a [u8],
}

impl<'a> WeightView<'a> {
    /// A view, or `None` when `data` does not have the length the shape implies.
    pub fn new(ty: QuantType, rows: usize, cols: usize, data: &'a [u8]) -> Option<Self> {
        let row_bytes = ty.bytes_for(cols as u64)? as usize;
        (data.len() == rows.checked_mul(row_bytes)?).then_some(WeightView {
            ty,
            rows,
            cols,
            data,
        })
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_size() * self.ty.type_size()
    }

    /// The stored bytes of row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Rows `rows` as a smaller matrix view (a task's share of the output rows).
    ///
    /// # Panics
    /// When `rows` is not within `0..self.rows`.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> WeightView<'a> {
        let rb = self.row_bytes();
        WeightView {
            rows: rows.len(),
            data: &self.data[rows.start * rb..rows.end * rb],
            ..*self
        }
    }

    /// Dequantizes row `r` into `out` (`cols` long): the embedding lookup.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        self.ty.dequantize_row(self.row(r), out)
    }
}
