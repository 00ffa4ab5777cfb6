//! `HostTensor` construction, validation and read-back (no ONNX Runtime needed).

use onnx_ac::runtime::{f16_bits_to_f32, f32_to_f16_bits, HostTensor, RuntimeError};
use onnx_ac_passes::ir::DType;

#[test]
fn builds_packed_little_endian() {
    let t = HostTensor::from_f32("a", &[2], &[1.0, -2.0]).unwrap();
    assert_eq!(t.data, [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
    assert_eq!(t.numel(), 2);
    let t = HostTensor::from_i64("b", &[1], &[-2]).unwrap();
    assert_eq!(t.data, (-2i64).to_le_bytes());
    let t = HostTensor::from_bool("c", &[2], &[true, false]).unwrap();
    assert_eq!(t.data, [1, 0]);
    let t = HostTensor::from_f32_as_f16("h", &[1], &[1.0]).unwrap();
    assert_eq!(
        (t.dtype, t.data.as_slice()),
        (DType::Float16, &[0x00, 0x3c][..])
    );
    let t = HostTensor::zeros("z", DType::Double, &[2, 3]).unwrap();
    assert_eq!(t.data.len(), 48);
    let s = HostTensor::from_f64("s", &[], &[2.5]).unwrap();
    assert_eq!((s.numel(), s.to_f64().unwrap()), (1, vec![2.5]));
}

#[test]
fn validates_byte_count_and_dims() {
    let e = HostTensor::new("x", DType::Float, vec![3], vec![0; 8]).unwrap_err();
    assert!(matches!(e, RuntimeError::BadInput { .. }));
    assert!(e.to_string().contains("needs 12 bytes but 8"), "{e}");
    assert!(HostTensor::from_f32("x", &[-1], &[]).is_err());
    assert!(HostTensor::from_f32("x", &[2, 2], &[1.0]).is_err());
    let e = HostTensor::new("s", DType::String, vec![1], vec![]).unwrap_err();
    assert!(matches!(e, RuntimeError::UnsupportedDType { .. }), "{e}");
    assert!(HostTensor::from_f32("e", &[0, 5], &[]).is_ok());
}

#[test]
fn reads_back_with_exact_widening_only() {
    let f = HostTensor::from_f32("f", &[2], &[0.1, 3.0]).unwrap();
    assert_eq!(f.to_f32().unwrap(), [0.1, 3.0]);
    assert_eq!(f.to_f64().unwrap(), [f64::from(0.1f32), 3.0]);
    assert!(matches!(
        f.to_i64(),
        Err(RuntimeError::DTypeMismatch { .. })
    ));
    let d = HostTensor::from_f64("d", &[1], &[0.1]).unwrap();
    assert!(d.to_f32().is_err(), "f64 -> f32 would lose precision");
    let i = HostTensor::from_i32("i", &[2], &[-5, 6]).unwrap();
    assert_eq!(i.to_i64().unwrap(), [-5, 6]);
    assert!(i.to_f32().is_err());
    let b = HostTensor::from_i8("b", &[2], &[-1, 1]).unwrap();
    assert_eq!(b.to_i64().unwrap(), [-1, 1]);
    let u = HostTensor::from_u8("u", &[1], &[200]).unwrap();
    assert_eq!(u.to_i64().unwrap(), [200]);
    let big = HostTensor::new(
        "big",
        DType::Uint64,
        vec![1],
        u64::MAX.to_le_bytes().to_vec(),
    )
    .unwrap();
    assert!(big.to_i64().is_err());
    let e = f.to_bool().unwrap_err();
    assert!(e.to_string().contains("holds Float"), "{e}");
}

#[test]
fn f16_conversion() {
    for v in [0.0f32, 1.0, -2.0, 0.5, 65504.0, 1.0 / 1024.0, 6.0e-8] {
        let h = f32_to_f16_bits(v);
        let back = f16_bits_to_f32(h);
        assert!((back - v).abs() <= v.abs() * 1e-3 + 6e-8, "{v} -> {back}");
    }
    assert_eq!(f32_to_f16_bits(f32::INFINITY), 0x7c00);
    assert_eq!(f32_to_f16_bits(1e6), 0x7c00);
    assert_eq!(f16_bits_to_f32(0xfc00), f32::NEG_INFINITY);
}
