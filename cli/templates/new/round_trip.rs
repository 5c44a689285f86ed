//! The producer's events reach the consumer, each once, in order (in
//! memory: no server needed).

use {{crate}}_contract::Backend;

#[tokio::test]
async fn what_the_producer_sends_the_consumer_handles() {
    let backend = Backend::in_memory();
    {{crate}}_producer::produce(&backend, 3).await.unwrap();
    let seen = {{crate}}_consumer::consume(&backend, Some(3)).await.unwrap();
    let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(seen[0].1, "hello number 1");
}
