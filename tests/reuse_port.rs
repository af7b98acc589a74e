//! `--reuse-port` (issue 11 §2): with it, a second courier process can bind the same address and
//! the kernel spreads connections over both; without it the second bind is refused.

use std::net::SocketAddr;

#[tokio::test]
async fn reuse_port_lets_two_listeners_share_an_address() {
    let first = courier::server::bind("127.0.0.1:0".parse().unwrap(), true).expect("bind");
    let addr: SocketAddr = first.local_addr().expect("addr");
    let second = courier::server::bind(addr, true).expect("a second SO_REUSEPORT bind");
    assert_eq!(second.local_addr().expect("addr"), addr);
    assert!(
        courier::server::bind(addr, false).is_err(),
        "a plain bind must be refused while the port is taken"
    );
}
