/* dovecot_pw_vectors.h - made by make_dovecot_pw_vectors.sh with
 * `doveadm pw -s SCHEME -p PASSWORD` (Dovecot 2.3). */
#define DOVECOT_PW_PASSWORD "c0rrect horse:béta"
static const struct {
    const char *scheme;
    const char *stored;
} dovecot_pw_vectors[] = {
    {"ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$vMSlPPgTXsfeW4tk28YmrQ$"
                 "PJu4qPCvcWdJpCzUxgg99M2A9Dc7Ld2TdPF6TdLvir8"},
    {"ARGON2I", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$kEyX+FosIQLBkqQQtYiYdw$l+"
                "AT9dxfyModK3rSZKtaDwhD4phQ/XrXwgEF0Xv7DSk"},
    {"SHA512-CRYPT",
     "{SHA512-CRYPT}$6$wXj8gSGnSWWbHPc1$J2.2qOQYoc015q43PSmuagDQ9Wb65CuGmVzjqXNDjtG/"
     "dYBShlXbhrcfHDpMUAJsLiLCbX4bxsH8SVnysSWaU0"},
    {"SHA256-CRYPT",
     "{SHA256-CRYPT}$5$ruM288yL5F1IF0..$/pqdez1IANjSvknEy00XinSwcv/s53oYdnNucODrbd2"},
    {"BLF-CRYPT", "{BLF-CRYPT}$2y$05$S7j8yHRKi8oMEVb8JFzf/OwYk0hsYHNXvswB9ROIYWFJUKJwa9qtO"},
    {"MD5-CRYPT", "{MD5-CRYPT}$1$z58DQp0N$5Y3bgTuy0/z3AAiJoH8Nv."},
    {"DES-CRYPT", "{DES-CRYPT}XcwAE1VoTa9gA"},
    {"CRYPT", "{CRYPT}$2y$05$sUDL74TP5S8xPeHuDgLcl.N7OkvQwOa3aWjX1uq8LGuiapoHNn9pm"},
    {"MD5", "{MD5}$1$89ojSzve$jtzwQ39MttWy0/m.ouD0n0"},
    {"SSHA512",
     "{SSHA512}8lWnxnwvsgT5DH3LdpyVtl48GAPD42ZYy0dSBtaXn2w6FLmHLyt79gE8fC4xdgmN5dH51IH2HnYQ4kbkws+/"
     "Yo9gEro="},
    {"SSHA256", "{SSHA256}ERqv6ZhnBwIvABzv/R+ho+HsZXcFdJlwlkKC6RRGdiZ8IQBh"},
    {"SSHA", "{SSHA}x3rL9CwH3ItR2K43Zqy2zw2YgofqXPIy"},
    {"SMD5", "{SMD5}gGRL0YkHfwSZ+ap26mwv6u0+0z8="},
    {"SHA512", "{SHA512}yeBEh11fyk4OCEfpenzhkBQnEq3rvJ5b/x4V6T2NgLiiFaA0QKHq5k8Nfxf9W8551n/"
               "K8z3D81cB7M/VRaQ8VA=="},
    {"SHA256", "{SHA256}fFcGla/roPAlUEX+ml0B+ReZp/1D9pGbTPtBDx1eJgs="},
    {"SHA", "{SHA}VwEbjz9twaDJsrXYVdko17KGrQ8="},
    {"SHA1", "{SHA1}VwEbjz9twaDJsrXYVdko17KGrQ8="},
    {"LDAP-MD5", "{LDAP-MD5}VzenHSp2H1e3tp9RH87hgQ=="},
    {"PLAIN-MD5", "{PLAIN-MD5}5737a71d2a761f57b7b69f511fcee181"},
    {"SHA256.HEX", "{SHA256.HEX}7c570695afeba0f0255045fe9a5d01f91799a7fd43f6919b4cfb410f1d5e260b"},
    {"SSHA512.HEX", "{SSHA512.HEX}"
                    "800d9445605249c4faaabdcfae969e3a555aa881c7d6646977c21c556be7a238be66040463b757"
                    "4db53212e3a07732505f544b91e74e23472fd3863aa9e69b0e4edb2b8a"},
    {"PBKDF2", "{PBKDF2}$1$1c.F19TikDod4veh$5000$1a92020bdd38c10580615a9c0fff342be26f5b27"},
    {"SCRAM-SHA-1", "{SCRAM-SHA-1}4096,xmOX419JDN9Ki/"
                    "gXPF371A==,Hrh9iZEaRBPGkSsQKVKPrwlu848=,uQcn0ZnIIcQnBtmPZOfAxI9LaTo="},
    {"SCRAM-SHA-256",
     "{SCRAM-SHA-256}4096,IJsADOIluhhl8gvc7bGeew==,UlJy0wBriMuEcBS7DzLZYd1mLoaZeB87kj2luhH0T3Q=,"
     "iKITthlRTlHZU/KqIc3hWjhoY+8FFok3iZ6RxAY054s="},
    {"PLAIN", "{PLAIN}c0rrect horse:béta"},
    {"CLEAR", "{CLEAR}c0rrect horse:béta"},
    {"CLEARTEXT", "{CLEARTEXT}c0rrect horse:béta"},
};
