fn main() {
    let _ = rdkafka::util::get_rdkafka_version();
    let _ = hdrhistogram::Histogram::<u64>::new(2);
}
