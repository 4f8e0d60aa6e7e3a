//! `MAMBA_FORCE_SCALAR=1` selects the scalar table, whose matmul is `matmul_ref`
//! exactly. (One test in its own binary: the variable is read once per process.)

mod common;

use common::*;
use mamba_format::QuantType;
use mamba_kernels::cpu;
use mamba_kernels::matmul::matmul_ref;

#[test]
fn forced_scalar_gives_matmul_ref_results() {
    std::env::set_var("MAMBA_FORCE_SCALAR", "1");
    assert!(cpu::scalar_forced());
    assert_eq!(cpu::kernels().name, "scalar");
    let mut rng = Rng::new(6);
    for ty in QuantType::ALL {
        let (rows, cols, n) = (7, 2 * unit(ty), 3);
        let m = Matrix::random(ty, rows, cols, &mut rng);
        let x = rng.normals(n * cols, 1.0);
        let (mut a, mut b) = (vec![0.0; n * rows], vec![0.0; n * rows]);
        mamba_kernels::matmul(&m.view(), &x, n, &mut a);
        matmul_ref(&m.view(), &x, n, &mut b);
        assert_eq!(a, b, "{ty}");
    }
}
