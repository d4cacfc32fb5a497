# Approved exceptions to the HIPAA baseline for clinic-001-srv-primary.
# Each is valid through its `expires` day (UTC); the day after, the build fails again with the
# rule's message. Process: baseline/README.md, "Exceptions".
[
  {
    rule = "SSH-001";
    reason = "PROVISIONAL example";
    approved_by = "Dr. Jane Example, HIPAA security officer, clinic-001";
    expires = "2027-03-31";
    ticket = "MSP-1423";
  }
]
