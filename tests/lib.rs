//! End-to-end tests against a real `berth serve`; helpers live in berth-testsupport.
