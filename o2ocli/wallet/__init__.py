"""HD wallet key layer: BIP39 mnemonics, BIP32 derivation and the encrypted keystore."""
