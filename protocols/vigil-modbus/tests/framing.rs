//! Property tests of the framing: every valid request encodes to a frame a
//! spec-following device can parse, and its replies decode to what was sent.

use proptest::prelude::*;
use vigil_modbus::frame::{self, MBAP_LEN, Reply, ReplyError, Request, pack_bits, unpack_bits};

/// What a device would answer to `request` holding `coils` (the device side of the spec).
fn device_reply(pdu: &[u8], coils: &[bool]) -> Vec<u8> {
    let start = usize::from(u16::from_be_bytes([pdu[1], pdu[2]]));
    match pdu[0] {
        1 | 2 => {
            let count = usize::from(u16::from_be_bytes([pdu[3], pdu[4]]));
            let bits = pack_bits(&coils[start..start + count]);
            [&[pdu[0], bits.len() as u8][..], &bits].concat()
        }
        5 | 15 => pdu[..5].to_vec(),
        other => panic!("unexpected function {other}"),
    }
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (0u16..2000, 1u16..=2000).prop_map(|(start, count)| Request::ReadCoils { start, count }),
        (0u16..2000, 1u16..=2000).prop_map(|(start, count)| Request::ReadDiscreteInputs { start, count }),
        (0u16..4000, any::<bool>()).prop_map(|(address, on)| Request::WriteSingleCoil { address, on }),
        (0u16..2000, prop::collection::vec(any::<bool>(), 1..=1968))
            .prop_map(|(start, values)| Request::WriteMultipleCoils { start, values }),
    ]
}

proptest! {
    #[test]
    fn bits_survive_packing(bits in prop::collection::vec(any::<bool>(), 0..2100)) {
        let packed = pack_bits(&bits);
        prop_assert_eq!(packed.len(), bits.len().div_ceil(8));
        prop_assert_eq!(unpack_bits(&packed, bits.len()), bits);
    }

    #[test]
    fn requests_round_trip_through_a_spec_device(request in request(), transaction: u16, unit: u8, seed: u64) {
        prop_assert!(request.validate().is_ok());
        let frame = request.encode(transaction, unit);
        prop_assert!(frame.len() <= 260, "an ADU is at most 260 bytes on TCP");
        let header = frame::parse_header(frame[..MBAP_LEN].try_into().unwrap()).unwrap();
        prop_assert_eq!((header.transaction, header.unit, header.pdu_len), (transaction, unit, frame.len() - MBAP_LEN));
        let coils: Vec<bool> = (0..4000u64).map(|i| (seed >> (i % 64)) & 1 == 1).collect();
        let reply = request.decode_reply(&device_reply(&frame[MBAP_LEN..], &coils));
        match &request {
            Request::ReadCoils { start, count } | Request::ReadDiscreteInputs { start, count } => {
                let (start, count) = (usize::from(*start), usize::from(*count));
                prop_assert_eq!(reply, Ok(Reply::Bits(coils[start..start + count].to_vec())));
            }
            _ => prop_assert_eq!(reply, Ok(Reply::Written)),
        }
    }

    #[test]
    fn arbitrary_replies_never_panic(request in request(), pdu in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Err(ReplyError::Malformed(reason)) = request.decode_reply(&pdu) {
            prop_assert!(!reason.is_empty());
        }
    }

    #[test]
    fn arbitrary_headers_never_panic(bytes: [u8; MBAP_LEN]) {
        if let Ok(header) = frame::parse_header(bytes) {
            prop_assert!((1..=253).contains(&header.pdu_len));
        }
    }
}
