//! `Client` against a real Modbus TCP device: pymodbus's server, run by
//! `vigil_peers::ModbusSim` on a free loopback port. Needs the venv
//! (`cargo xtask setup`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use vigil_modbus::{Client, Error, ExceptionCode, Function};
use vigil_peers::modbus::ModbusSim;

const TIMEOUT: Duration = Duration::from_millis(500);

fn device() -> (ModbusSim, Client) {
    let sim = ModbusSim::start(40, 24).expect("the Modbus simulator starts");
    let client = Client::connect(&sim.addr(), 1, TIMEOUT).expect("connects to the simulator");
    (sim, client)
}

#[test]
fn single_coil_writes_reach_the_device_and_read_back() {
    let (sim, mut client) = device();
    client.write_single_coil(3, true).unwrap();
    client.write_single_coil(39, true).unwrap();
    let coils = sim.coils();
    assert_eq!(coils.len(), 40);
    assert!(coils[3] && coils[39]);
    assert_eq!(coils.iter().filter(|c| **c).count(), 2);
    assert_eq!(client.read_coils(2, 3).unwrap(), [false, true, false]);
    client.write_single_coil(3, false).unwrap();
    assert!(!sim.coils()[3]);
}

#[test]
fn multiple_coil_writes_span_byte_boundaries() {
    let (sim, mut client) = device();
    let pattern: Vec<bool> = (0..19).map(|i| i % 3 == 0).collect();
    client.write_multiple_coils(5, &pattern).unwrap();
    assert_eq!(&sim.coils()[5..24], pattern.as_slice());
    assert_eq!(client.read_coils(5, 19).unwrap(), pattern);
    assert_eq!(client.read_coils(0, 40).unwrap(), sim.coils());
}

#[test]
fn discrete_inputs_read_what_the_device_senses() {
    let (sim, mut client) = device();
    sim.set_discrete_inputs(8, &[true, false, true, true]);
    sim.set_discrete_input(23, true);
    let inputs = client.read_discrete_inputs(0, 24).unwrap();
    let on: Vec<usize> = inputs.iter().enumerate().filter(|(_, v)| **v).map(|(i, _)| i).collect();
    assert_eq!(on, [8, 10, 11, 23]);
}

#[test]
fn out_of_range_addresses_are_illegal_data_address_exceptions() {
    let (_sim, mut client) = device();
    let exception = |result: Result<_, Error>| match result {
        Err(Error::Exception { function, code, addr }) => (function, code, addr),
        other => panic!("expected an exception, got {other:?}"),
    };
    let (function, code, _) = exception(client.read_coils(38, 3));
    assert_eq!((function, code), (Function::ReadCoils, ExceptionCode::IllegalDataAddress));
    let (function, code, _) = exception(client.read_discrete_inputs(24, 1));
    assert_eq!((function, code), (Function::ReadDiscreteInputs, ExceptionCode::IllegalDataAddress));
    let (function, code, _) = exception(client.write_single_coil(40, true).map(|()| Vec::new()));
    assert_eq!((function, code), (Function::WriteSingleCoil, ExceptionCode::IllegalDataAddress));
    let (function, code, addr) = exception(client.write_multiple_coils(39, &[true, true]).map(|()| Vec::new()));
    assert_eq!((function, code), (Function::WriteMultipleCoils, ExceptionCode::IllegalDataAddress));
    let message = client.read_coils(40, 1).unwrap_err().to_string();
    assert!(
        message.contains(&addr) && message.contains("illegal data address") && message.contains("read coils"),
        "{message}"
    );
    // An exception is an answer: the connection stays usable.
    assert!(client.is_connected());
    assert_eq!(client.read_coils(0, 1).unwrap(), [false]);
}

#[test]
fn quantities_beyond_the_spec_are_refused_before_sending() {
    let (_sim, mut client) = device();
    assert!(matches!(client.read_coils(0, 2001), Err(Error::InvalidRequest { .. })));
    assert!(matches!(client.read_discrete_inputs(0, 0), Err(Error::InvalidRequest { .. })));
    assert!(matches!(client.write_multiple_coils(0, &[true; 1969]), Err(Error::InvalidRequest { .. })));
    assert!(matches!(client.write_multiple_coils(0, &[]), Err(Error::InvalidRequest { .. })));
}

#[test]
fn a_silent_device_times_out_and_is_reached_again_when_it_answers() {
    let (sim, mut client) = device();
    sim.stop_responding(true);
    let error = client.read_coils(0, 1).unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(error.is_unreachable());
    assert!(error.to_string().contains(&sim.addr()), "{error}");
    assert!(matches!(client.write_single_coil(0, true), Err(Error::Timeout { .. })));
    assert!(!sim.coils()[0], "a silent device ignores writes");
    sim.stop_responding(false);
    client.write_single_coil(0, true).unwrap();
    assert_eq!(client.read_coils(0, 1).unwrap(), [true]);
}

#[test]
fn a_stuck_coil_echoes_the_write_but_reads_back_its_own_value() {
    let (sim, mut client) = device();
    sim.stick_coil(7, Some(false));
    client.write_single_coil(7, true).unwrap();
    assert_eq!(client.read_coils(7, 1).unwrap(), [false]);
    sim.stick_coil(7, None);
    client.write_single_coil(7, true).unwrap();
    assert_eq!(client.read_coils(7, 1).unwrap(), [true]);
}

#[test]
fn a_refused_connection_says_where() {
    // Other tests bind free ports in parallel: a released port may be taken
    // again before this test connects, so try a few.
    let (addr, error) = (0..5)
        .find_map(|_| {
            let addr = format!("127.0.0.1:{}", vigil_peers::dead_port());
            Client::connect(&addr, 1, TIMEOUT).err().map(|error| (addr, error))
        })
        .expect("some released port stays free");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains(&addr), "{error}");
}

#[test]
fn a_device_that_goes_away_is_reported_closed_or_refused() {
    let (sim, mut client) = device();
    drop(sim);
    let error = client.read_coils(0, 1).unwrap_err();
    assert!(matches!(error, Error::Closed { .. } | Error::Io { .. } | Error::Connect { .. }), "{error:?}");
}

/// A misbehaving device (no real one sends these): a raw socket that answers
/// with whatever bytes the test gives it, in pieces.
fn raw_device(reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 12];
        while stream.read_exact(&mut request).is_ok() {
            for piece in reply(&request) {
                if stream.write_all(&piece).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    addr
}

#[test]
fn a_reply_arriving_in_pieces_is_reassembled() {
    let addr = raw_device(|request| {
        let mut frame = request[..4].to_vec();
        frame.extend_from_slice(&[0, 4, request[6], 0x01, 0x01, 0b101]);
        frame.iter().map(|b| vec![*b]).collect()
    });
    let mut client = Client::connect(&addr, 9, TIMEOUT).unwrap();
    assert_eq!(client.read_coils(0, 3).unwrap(), [true, false, true]);
    assert_eq!(client.read_coils(0, 3).unwrap(), [true, false, true]);
}

#[test]
fn a_reply_with_another_transaction_id_is_malformed() {
    let addr = raw_device(|request| {
        let transaction = u16::from_be_bytes([request[0], request[1]]).wrapping_add(1).to_be_bytes();
        vec![vec![transaction[0], transaction[1], 0, 0, 0, 4, request[6], 0x01, 0x01, 0x01]]
    });
    let mut client = Client::connect(&addr, 1, TIMEOUT).unwrap();
    let error = client.read_coils(0, 1).unwrap_err();
    assert!(matches!(&error, Error::Malformed { reason, .. } if reason.contains("transaction id")), "{error:?}");
    assert!(!client.is_connected(), "a stream that lost step is dropped");
}

#[test]
fn a_reply_from_another_unit_is_malformed() {
    let addr = raw_device(|request| vec![[&request[..4], &[0, 4, request[6] + 1, 0x01, 0x01, 0x01]].concat()]);
    let mut client = Client::connect(&addr, 1, TIMEOUT).unwrap();
    let error = client.read_coils(0, 1).unwrap_err();
    assert!(matches!(&error, Error::Malformed { reason, .. } if reason.contains("unit 2")), "{error:?}");
}
